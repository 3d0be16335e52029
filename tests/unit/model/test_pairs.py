"""Pairs built from once-tokenized texts equal the tokenizer's own pair encoding; the query
is cut first, to ``max_query_tokens``, at a bounded cost (real tokenizer)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from gateway.model.pairs import PairTokenizer

SAMPLE = (
    "the quick brown fox jumps over a lazy dog capital of France Berlin Wall fell in 1989 "
    "Zürich naïve café 東京 🙂 can't e-mail 3.14 unaffable (lung) cancer, risk; CO2"
)
WORDS = SAMPLE.split(" ")


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


@pytest.fixture(scope="module")
def files(model_dir: Path) -> tuple[PairTokenizer, Tokenizer, Tokenizer]:
    path = model_dir / "tokenizer.json"
    pairs = Tokenizer.from_file(str(path))
    pairs.no_padding()
    pairs.enable_truncation(256, strategy="only_second")
    plain = Tokenizer.from_file(str(path))
    plain.no_padding()
    plain.no_truncation()
    return PairTokenizer(path, 256, 128), pairs, plain


def test_pairs_equal_the_tokenizers_pair_encoding(
    files: tuple[PairTokenizer, Tokenizer, Tokenizer],
) -> None:
    ours, pairs, _ = files
    rng = random.Random(12)
    checked = truncated = 0
    for _ in range(200):
        query = text(rng, rng.randint(1, 40))  # within the query cap
        docs = [text(rng, rng.randint(1, 400)) for _ in range(4)]
        want = pairs.encode_batch([(query, d) for d in docs])
        got = ours.encode([(query, d) for d in docs])
        for w, g in zip(want, got, strict=True):
            assert g.ids.tolist() == w.ids
            assert g.type_ids.tolist() == w.type_ids
            assert g.truncated == bool(w.overflowing)
            checked += 1
            truncated += g.truncated
    assert checked == 800 and 0 < truncated < checked  # both sides of the doc cut were seen


def test_a_long_query_is_cut_to_its_first_tokens(
    files: tuple[PairTokenizer, Tokenizer, Tokenizer],
) -> None:
    ours, _, plain = files
    rng = random.Random(5)
    for words in (200, 5_000, 200_000):  # ~1 KB, ~30 KB, ~1.2 MB
        query = text(rng, words)
        clipped = ours.clip_query(query)
        head = plain.encode(query[:50_000], add_special_tokens=False).ids[:128]
        assert query.startswith(clipped)
        assert plain.encode(clipped, add_special_tokens=False).ids == head
        (enc,) = ours.encode([(query, "a short document")])
        assert enc.truncated and len(enc) == 128 + 3 + 3  # [CLS] q [SEP] a short document [SEP]
    short = "berlin wall"
    assert ours.clip_query(short) == short


@pytest.mark.parametrize(
    "query",
    ["x" * 1_000_000, ("a" * 99 + " ") * 10_000, " ".join(["東京"] * 300_000)],
    ids=["one 1 MB word", "long words", "CJK"],
)
def test_the_query_costs_a_bounded_prefix(
    files: tuple[PairTokenizer, Tokenizer, Tokenizer], query: str
) -> None:
    ours, _, _ = files
    clipped = ours.clip_query(query)
    assert len(clipped) <= 128 * 128  # never more than max_query_tokens x 128 characters read
    (enc,) = ours.encode([(query, "a document")])
    assert len(enc) <= 256


def test_query_cap_leaves_room_for_the_document(model_dir: Path) -> None:
    tok = PairTokenizer(model_dir / "tokenizer.json", 64, 1000)
    assert tok.max_query_tokens == 64 - 3 - 1
    (enc,) = tok.encode([("word " * 500, "the document")])
    assert len(enc) == 64 and enc.type_ids.tolist().count(1) == 2  # one doc token + [SEP]
