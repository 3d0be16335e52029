"""Run ``rerank-gateway`` as users do: the installed console script (``run_cli``) or
``python -m gateway`` (``run_main``), in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.doubles.corpora import REPO

CONSOLE_SCRIPT = Path(sys.executable).parent / "rerank-gateway"


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    module: bool = False,
    timeout_s: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``rerank-gateway ARGS`` (or ``python -m gateway ARGS``) with only ``env`` set."""
    command = [sys.executable, "-m", "gateway"] if module else [str(CONSOLE_SCRIPT)]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [*command, *args],
        check=False,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
    )


def run_main(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m gateway`` with only ``env`` (and ``PATH``) set, from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "gateway"],
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
