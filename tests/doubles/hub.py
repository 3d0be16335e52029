"""A scripted Hugging Face Hub: the two routes ``huggingface_hub`` uses to fetch files.

``ScriptedHub({"org/model": {"onnx/model.onnx": b"...", ...}})`` serves, on a
free loopback port (point ``HF_ENDPOINT`` at ``hub.url``):

- ``GET /api/models/{repo}[/revision/{rev}]``: the repository's info (``sha`` and
  ``siblings``, the file list), or 404 ``X-Error-Code: RepoNotFound``;
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: a file with the headers the client
  reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``), or 404 ``EntryNotFound``.

It is a fake only of the Hub's HTTP answers: the real client talks to it.
``requests`` records the paths asked for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

SHA = "0123456789abcdef0123456789abcdef01234567"


class ScriptedHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _repo(self, parts: list[str]) -> tuple[str, dict[str, bytes]] | None:
        repo = "/".join(parts[:2])
        return (repo, self.repos[repo]) if repo in self.repos else None

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        self.requests.append(f"{handler.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            found = self._repo(parts[2:])
            if found is None:
                return _send(handler, 404, b'{"error":"Repository not found"}', "RepoNotFound")
            repo, files = found
            info = {
                "id": repo,
                "modelId": repo,
                "sha": SHA,
                "siblings": [{"rfilename": name} for name in sorted(files)],
            }
            return _send(handler, 200, json.dumps(info).encode(), body=body)
        found = self._repo(parts)
        if found is None or parts[2:3] != ["resolve"]:
            return _send(handler, 404, b'{"error":"Repository not found"}', "RepoNotFound")
        _, files = found
        name = "/".join(parts[4:])
        if name not in files:
            return _send(handler, 404, b'{"error":"Entry not found"}', "EntryNotFound")
        content = files[name]
        headers = {"X-Repo-Commit": SHA, "ETag": f'"{hashlib.sha256(content).hexdigest()}"'}
        _send(handler, 200, content, headers=headers, body=body)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    content: bytes,
    error_code: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    body: bool = True,
) -> None:
    handler.send_response(status)
    if error_code:
        handler.send_header("X-Error-Code", error_code)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    if body:
        handler.wfile.write(content)
