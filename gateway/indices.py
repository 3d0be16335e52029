"""Index names against operator patterns: ``*`` / ``?`` wildcards, ``-name`` excludes.

One rule for every place that asks (which searches are reranked, which indices a
client may reach).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence


def name_allowed(name: str, patterns: Sequence[str], *, wildcard_safe: bool = False) -> bool:
    """Whether ``name`` matches an include and no exclude.

    With ``wildcard_safe`` (access control needs it; reranking does not) a name is also
    refused when the cluster could read it as more than the index it spells: a wildcard
    or date math (``<logs-{now/d}>``) while any exclude exists, ``_all`` / ``-x`` / ``+x``
    (no index name starts so), a path (``/``, ``\\``) or a remote cluster (``remote:x``)
    that no pattern names.
    """
    includes = [p for p in patterns if not p.startswith("-")]
    excludes = [p[1:] for p in patterns if p.startswith("-")]
    if not name or not any(fnmatch.fnmatchcase(name, p) for p in includes):
        return False
    if wildcard_safe and not _literal(name, patterns, bool(excludes)):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in excludes)


def path_allowed(index: str | None, patterns: Sequence[str]) -> bool:
    """Whether every index a path names (``a,b``; none means ``_all``) is allowed."""
    for name in (n for n in (index or "_all").split(",") if n):
        if name == "_all":
            if "*" not in patterns:
                return False
        elif not name_allowed(name, patterns):
            return False
    return True


def _literal(name: str, patterns: Sequence[str], excludes: bool) -> bool:
    if name[0] in "_-+" or "/" in name or "\\" in name:
        return False
    if ":" in name and not any(":" in p for p in patterns):
        return False
    return not (excludes and (name[0] == "<" or any(c in name for c in "*?")))
