"""Every relative link in README.md and docs/*.md reaches a file, and its #anchor a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doubles.corpora import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)#*$", re.M)


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text())):
        slug = anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(CODE.sub("", prose(page.read_text())))


def test_the_anchor_rules() -> None:
    assert anchor("A/B tests, interleaving, shadow mode") == "ab-tests-interleaving-shadow-mode"
    assert anchor("`POST /rerank` (TEI)") == "post-rerank-tei"
    assert anchor("Embeddings / vectors") == "embeddings--vectors"


def test_the_readme_links_the_docs_pages() -> None:
    linked = {(REPO / target.split("#")[0]).resolve() for target in links(REPO / "README.md")}
    assert set(PAGES[1:]) <= linked, "a docs/ page the README does not link"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or (file.suffix == ".md" and fragment not in {"", *anchors(file)}):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"
