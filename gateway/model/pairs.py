"""(query, document) pairs tokenized in bounded work: each text once, the query cut first.

``encode`` tokenizes the query of a set of pairs once, cut to ``max_query_tokens``,
and each distinct document once, then builds every pair from those ids with the
tokenizer's own ``post_process`` (its truncation cuts the document side, its
template adds the special tokens). The ids are the ones the tokenizer gives for
the pair encoded whole with ``only_second`` truncation whenever the query fits
the cap (tests check it), at a cost of O(query + documents) instead of
O(pairs x query). Elasticsearch's text similarity truncates the second input
the same way by default (eland #713); jina's reranker caps the query at half
the pair (``max_query_length``).

The query is never tokenized whole: a prefix of at most ``max_query_tokens x
8`` characters is, growing x4 until it holds the cap in tokens of complete
words (pre-tokenizer words: the last two words of a prefix may be cut, so
their tokens do not count), and no further than ``max_query_tokens x 128``
characters. A query of any length thus costs at most that much tokenizing.

Only tokenizers here; errors become ``ModelError`` (``local`` re-raises them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from gateway.errors import ModelError
from gateway.model.base import Encoded, Pair, token_windows

_FIRST_CHARS_PER_TOKEN = 8  # the first prefix tried; English WordPiece is ~4-5
_MAX_CHARS_PER_TOKEN = 128  # the longest prefix: a WordPiece word is <= 100 characters
_GROWTH = 4


class PairTokenizer:
    """Tokenizes pairs for a cross-encoder of ``max_length`` tokens per pair."""

    def __init__(self, tokenizer_file: Path, max_length: int, max_query_tokens: int) -> None:
        self._pairs = Tokenizer.from_file(str(tokenizer_file))
        self._pairs.no_padding()
        self._pairs.enable_truncation(max_length, strategy="only_second")
        self._plain = Tokenizer.from_file(str(tokenizer_file))
        self._plain.no_padding()
        self._plain.no_truncation()
        specials = self._pairs.num_special_tokens_to_add(is_pair=True)
        # The document side keeps at least one token.
        self.max_query_tokens = max(min(max_query_tokens, max_length - specials - 1), 1)

    def clip_query(self, query: str) -> str:
        """The query cut to its first ``max_query_tokens`` tokens (itself when it fits)."""
        return self._query(query)[0]

    def _query(self, query: str) -> tuple[str, Encoding, bool]:
        """The query's text and tokens, cut to ``max_query_tokens``; whether it was cut."""
        cap = self.max_query_tokens
        chars = cap * _FIRST_CHARS_PER_TOKEN
        while True:
            prefix = query[:chars]
            enc = self._plain.encode(prefix, add_special_tokens=False)
            if len(prefix) == len(query):
                break
            words = [w for w in enc.word_ids if w is not None]
            complete = sum(1 for w in words if w < words[-1] - 1) if words else 0
            if complete >= cap or chars >= cap * _MAX_CHARS_PER_TOKEN:
                break
            chars *= _GROWTH
        if len(enc) <= cap and len(prefix) == len(query):
            return query, enc, False
        # Cut the text after its cap-th token and tokenize that again: an encoding left
        # with overflowing tokens would make the pair encodings multiply.
        for _ in range(3):
            prefix = prefix[: enc.offsets[min(cap, len(enc)) - 1][1]] if len(enc) else ""
            enc = self._plain.encode(prefix, add_special_tokens=False)
            if len(enc) <= cap:
                break
        return prefix, enc, True

    def encode(self, pairs: Sequence[Pair]) -> list[Encoded]:
        """Each pair as the tokenizer's pair encoding, the document side cut first."""
        try:
            queries = {q: self._query(q) for q in dict.fromkeys(q for q, _ in pairs)}
            texts = list(dict.fromkeys(t for _, t in pairs))
            encodings = self._plain.encode_batch(texts, add_special_tokens=False)
            docs = dict(zip(texts, encodings, strict=True))
            out = []
            for q, t in pairs:
                _, query, cut = queries[q]
                enc = self._pairs.post_process(query, docs[t], add_special_tokens=True)
                out.append(_encoded(enc, cut))
        except Exception as exc:  # tokenizers raises plain Exception types
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc
        return out

    def split(self, texts: Sequence[str], max_tokens: int, overlap: int) -> list[list[str]]:
        """Token windows of each text, cut at the tokens' character offsets."""
        try:
            encodings = self._plain.encode_batch(list(texts), add_special_tokens=False)
        except Exception as exc:
            raise ModelError(f"tokenization failed: {type(exc).__name__}") from exc
        out = []
        for text, enc in zip(texts, encodings, strict=True):
            offsets = enc.offsets
            windows = token_windows(len(offsets), max_tokens, overlap)
            out.append([text[offsets[a][0] : offsets[b - 1][1]] for a, b in windows])
        return out


def _encoded(enc: Encoding, query_cut: bool) -> Encoded:
    return Encoded(
        np.asarray(enc.ids, dtype=np.int64),
        np.asarray(enc.type_ids, dtype=np.int64),
        truncated=query_cut or bool(enc.overflowing),
    )


def padded_inputs(batch: Sequence[Encoded], names: Collection[str]) -> dict[str, Any]:
    """A batch as the model's int64 inputs, right-padded to its longest pair: ``input_ids``,
    ``attention_mask`` and, when the graph has it (``names``), ``token_type_ids``."""
    width = max(len(e) for e in batch)
    ids = np.zeros((len(batch), width), dtype=np.int64)
    types = np.zeros((len(batch), width), dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, enc in enumerate(batch):
        n = len(enc)
        ids[row, :n] = enc.ids
        types[row, :n] = enc.type_ids
        mask[row, :n] = 1
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        feed["token_type_ids"] = types
    return feed
