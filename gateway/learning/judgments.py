"""Labels per (query, document): from clicks or from people, and the files they travel in.

A :class:`Judgment` is ``label`` (a relevance estimate, ≥ 0) for ``doc`` under a query,
with a ``weight`` (how much evidence: impressions for clicks, 1 for people) and its
``source``. Queries are named by text (what the gateway sees); qrels files name them
by id, so reading them takes the id → text map of the dataset's queries.

Formats:

- TREC qrels: ``query-id 0 doc-id relevance`` per line (whitespace separated);
- BEIR qrels: a TSV with the header ``query-id corpus-id score``.

``grades`` turns estimates in [0, 1] into the integer grades a listwise learner wants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

QrelsFormat = Literal["trec", "beir"]


@dataclass(frozen=True, slots=True)
class Judgment:
    query: str
    doc: str
    label: float
    weight: float = 1.0
    source: str = "human"


def query_key(text: str) -> str:
    """The form under which query texts are compared: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


def read_qrels(
    path: Path, queries: Mapping[str, str], *, fmt: QrelsFormat | None = None
) -> list[Judgment]:
    """Human judgments from a TREC or BEIR qrels file; ``queries``: id → text.

    Lines whose query id has no text in ``queries`` are skipped (they cannot be
    matched with logged traffic)."""
    out: list[Judgment] = []
    with path.open(encoding="utf-8") as fh:
        lines = [line.split() for line in fh if line.strip()]
    if fmt is None:
        fmt = "beir" if lines and lines[0][:1] == ["query-id"] else "trec"
    if fmt == "beir":
        lines = lines[1:] if lines and lines[0][:1] == ["query-id"] else lines
    for parts in lines:
        if fmt == "trec":
            if len(parts) != 4:
                raise ValueError(f"{path}: not a TREC qrels line: {' '.join(parts)}")
            qid, doc, grade = parts[0], parts[2], parts[3]
        else:
            if len(parts) != 3:
                raise ValueError(f"{path}: not a BEIR qrels line: {' '.join(parts)}")
            qid, doc, grade = parts
        text = queries.get(qid)
        if text is not None:
            out.append(Judgment(text, doc, float(grade), 1.0, "human"))
    return out


def write_qrels(
    path: Path, judgments: Iterable[Judgment], query_ids: Mapping[str, str], *, fmt: QrelsFormat
) -> int:
    """Write judgments (labels rounded to integers) as qrels; ``query_ids``: text → id."""
    lines = ["query-id\tcorpus-id\tscore"] if fmt == "beir" else []
    for j in judgments:
        qid = query_ids[j.query]
        grade = round(j.label)
        lines.append(f"{qid}\t{j.doc}\t{grade}" if fmt == "beir" else f"{qid} 0 {j.doc} {grade}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - (fmt == "beir")


def by_query(judgments: Iterable[Judgment]) -> dict[str, dict[str, float]]:
    """query → doc → label (the last judgment of a pair wins)."""
    out: dict[str, dict[str, float]] = {}
    for j in judgments:
        out.setdefault(j.query, {})[j.doc] = j.label
    return out


def grades(labels: Iterable[float], levels: int = 5) -> list[int]:
    """Estimates in [0, 1] → integer grades 0 … levels-1 (equal-width bins, 1.0 at the top)."""
    return [min(levels - 1, max(0, math.floor(x * levels))) for x in labels]
