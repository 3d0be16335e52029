"""``--split-queries``: one qrels file's queries cut into train / test, seeded and
query-disjoint, refused where the dataset has its own train split (ops.harness.beir)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ops import learn_sim
from ops.harness import beir
from tests.doubles.corpora import REPO

DL19 = REPO.parent / "shared" / "data" / "trec-dl-2019-passage"


def _dataset(root: Path, *, train: bool = False) -> Path:
    """12 judged queries with graded qrels; q12 is judged but has no text in queries.jsonl."""
    (root / "qrels").mkdir(parents=True)
    texts = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(1, 12)]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in texts))
    rows = ["query-id\tcorpus-id\tscore"]
    rows += [f"q{i}\td{i}-{g}\t{g}" for i in range(1, 13) for g in range(4)]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    if train:
        (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1-1\t1\n")
    return root


def test_the_split_is_query_disjoint_and_keeps_the_grades(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    train, test = beir.split_queries(data, 0.5, seed=13)
    assert not set(train) & set(test)
    assert set(train) | set(test) == {f"q{i}" for i in range(1, 12)}  # q12: no query text
    assert (len(train), len(test)) == (6, 5)  # round(0.5 * 11) = 6 (banker's rounding: 5.5 → 6)
    whole = beir.qrels(data, "test")
    assert all(judged == whole[q] for q, judged in {**train, **test}.items())
    assert {g for judged in train.values() for g in judged.values()} == {0, 1, 2, 3}


def test_the_split_is_deterministic_per_seed(tmp_path: Path) -> None:
    data = _dataset(tmp_path)
    first = beir.split_queries(data, 0.5, seed=13)
    assert beir.split_queries(data, 0.5, seed=13) == first
    others = {tuple(sorted(beir.split_queries(data, 0.5, seed=s)[0])) for s in range(1, 6)}
    assert len(others) > 1  # the seed decides, not the file order
    assert len(beir.split_queries(data, 0.3, seed=13)[0]) == 3


def test_dl19_splits_into_22_train_and_21_test_queries() -> None:
    train, test = beir.split_queries(DL19, 0.5, seed=13)
    assert (len(train), len(test)) == (22, 21)
    assert not set(train) & set(test) and len(set(train) | set(test)) == 43


def test_a_dataset_with_a_train_split_is_refused(tmp_path: Path) -> None:
    data = _dataset(tmp_path, train=True)
    with pytest.raises(ValueError, match=r"train\.tsv exists"):
        beir.split_queries(data, 0.5, seed=13)


@pytest.mark.parametrize("share", [0.0, 1.0, 0.01])
def test_a_share_that_empties_a_side_is_refused(tmp_path: Path, share: float) -> None:
    with pytest.raises(ValueError):
        beir.split_queries(_dataset(tmp_path), share, seed=13)


def test_learn_sim_refuses_the_option_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data", train=True)
    argv = ["learn_sim", "--data", str(data), "--model-dir", str(tmp_path), "--out"]
    monkeypatch.setattr(sys, "argv", [*argv, str(tmp_path / "out"), "--split-queries", "0.5"])
    with pytest.raises(SystemExit) as stopped:
        learn_sim.main()
    assert stopped.value.code == 2
    assert "train.tsv exists: use its train split" in capsys.readouterr().err
    assert not (tmp_path / "out" / "features.json").exists()
