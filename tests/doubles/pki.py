"""A throwaway PKI for TLS tests, made with the openssl CLI (fast EC keys).

``make_certs(directory)`` writes ``ca.crt``/``ca.key`` and, for each name,
``<name>.crt``/``<name>.key`` signed by that CA, valid for 127.0.0.1 and localhost
(usable as a server or a client certificate).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_certs(directory: Path, names: Sequence[str] = ("server",)) -> Path:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=test-ca")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in names:
        openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                "-extfile", "san.ext")  # fmt: skip
    return directory
