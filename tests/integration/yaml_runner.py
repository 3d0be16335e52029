"""A small runner for Elasticsearch's YAML REST client tests, over the official Python client.

The format (``rest-api-spec/.../test/README.asciidoc`` in elastic/elasticsearch):
a file is several YAML documents: optional ``requires`` / ``setup`` / ``teardown``,
then one document per test, each a list of steps. Steps understood here:
``do`` (an API call, optionally with ``catch``), ``match``, ``length``,
``is_true``, ``is_false``, ``set``, ``gt``/``gte``/``lt``/``lte``, ``skip``.
``$name`` values come from earlier ``set`` steps. Enough for the core client
tests in ``../shared/conformance/elasticsearch-clients-tests``; a step it does
not know fails the test (so it is never counted as passing by accident).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from elasticsearch import ApiError, Elasticsearch

# `catch` values the spec names, by HTTP status (a /regex/ matches the error text instead).
CATCH_STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "missing": 404,
    "request_timeout": 408,
    "conflict": 409,
    "unavailable": 503,
}
_NO_VALUE = object()


class StepFailed(AssertionError):
    pass


@dataclass
class YamlFile:
    path: Path
    requires: dict[str, Any] = field(default_factory=dict)
    setup: list[dict[str, Any]] = field(default_factory=list)
    teardown: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> YamlFile:
        out = cls(path)
        for doc in yaml.safe_load_all(path.read_text()):
            for name, steps in (doc or {}).items():
                if name == "requires":
                    out.requires = steps
                elif name in ("setup", "teardown"):
                    setattr(out, name, steps)
                else:
                    out.tests[name] = steps
        return out


class Runner:
    """Runs one file's tests against one cluster URL; returns test name -> error or None."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stash: dict[str, Any] = {}
        self.last: Any = None

    def run_file(self, spec: YamlFile) -> dict[str, str | None]:
        if spec.requires.get("stack") is False:
            return {}
        results: dict[str, str | None] = {}
        for name, steps in spec.tests.items():
            self.stash, self.last = {}, None
            with Elasticsearch(self.url, max_retries=0, request_timeout=30) as es:
                try:
                    self.steps(es, spec.setup)
                    self.steps(es, steps)
                    results[name] = None
                except (StepFailed, ApiError) as exc:
                    results[name] = f"{type(exc).__name__}: {exc}"
                finally:
                    self.teardown(es, spec.teardown)
        return results

    def teardown(self, es: Elasticsearch, steps: list[dict[str, Any]]) -> None:
        with contextlib.suppress(StepFailed, ApiError):  # the next file starts from a reset
            self.steps(es, steps)

    def steps(self, es: Elasticsearch, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            ((kind, arg),) = step.items()
            handler: Callable[[Elasticsearch, Any], None] | None = getattr(self, f"_{kind}", None)
            if handler is None:
                raise StepFailed(f"unsupported step {kind!r}")
            handler(es, arg)

    # -- steps -----------------------------------------------------------------

    def _skip(self, es: Elasticsearch, arg: Any) -> None:
        raise StepFailed(f"skip requested: {arg}")

    def _do(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        arg = dict(arg)
        catch = arg.pop("catch", None)
        for ignored in ("headers", "warnings", "allowed_warnings", "node_selector"):
            arg.pop(ignored, None)
        ((api, params),) = arg.items()
        method: Any = es
        for part in api.split("."):
            method = getattr(method, part)
        try:
            with warnings.catch_warnings():
                # The YAML files mix `body` with body fields given as parameters (scroll,
                # ...); the client deprecates that style, which is the files' choice.
                warnings.simplefilter("ignore", DeprecationWarning)
                response = method(**self.resolve(params or {}))
        except ApiError as exc:
            if catch is None:
                raise
            self.last = exc.body
            if catch in CATCH_STATUS and exc.meta.status != CATCH_STATUS[catch]:
                raise StepFailed(f"expected {catch}, got {exc.meta.status}") from exc
            if catch.startswith("/") and not re.search(catch.strip("/"), str(exc.body)):
                raise StepFailed(f"error did not match {catch}") from exc
            return
        if catch is not None:
            raise StepFailed(f"expected an error ({catch}), got success")
        self.last = response.body if hasattr(response, "body") else bool(response)

    def _set(self, es: Elasticsearch, arg: dict[str, str]) -> None:
        for path, name in arg.items():
            self.stash[name] = self.value(path)

    def _match(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        for path, expected in arg.items():
            got, want = self.value(path), self.resolve(expected)
            if isinstance(want, str) and len(want) > 1 and want.startswith("/"):
                if not re.search(want.strip("/").strip(), str(got), re.VERBOSE):
                    raise StepFailed(f"{path}: {got!r} does not match {want}")
            elif got != want and not _same_number(got, want):
                raise StepFailed(f"{path}: {got!r} != {want!r}")

    def _length(self, es: Elasticsearch, arg: dict[str, int]) -> None:
        for path, expected in arg.items():
            if len(self.value(path)) != expected:
                raise StepFailed(f"{path}: length is not {expected}")

    def _is_true(self, es: Elasticsearch, path: str) -> None:
        got = self.value(path, default=None)
        if got in (None, False, "", 0, "false"):
            raise StepFailed(f"{path!r} is not true: {got!r}")

    def _is_false(self, es: Elasticsearch, path: str) -> None:
        got = self.value(path, default=None)
        if got not in (None, False, "", 0, "false"):
            raise StepFailed(f"{path!r} is not false: {got!r}")

    def _compare(self, arg: dict[str, Any], ok: Callable[[Any, Any], bool], op: str) -> None:
        for path, bound in arg.items():
            got = self.value(path)
            if not ok(got, self.resolve(bound)):
                raise StepFailed(f"{path}: not {got!r} {op} {bound!r}")

    def _gt(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        self._compare(arg, lambda a, b: a > b, ">")

    def _gte(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        self._compare(arg, lambda a, b: a >= b, ">=")

    def _lt(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        self._compare(arg, lambda a, b: a < b, "<")

    def _lte(self, es: Elasticsearch, arg: dict[str, Any]) -> None:
        self._compare(arg, lambda a, b: a <= b, "<=")

    # -- values ----------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``$name`` (whole value) replaced from the stash, recursively."""
        if isinstance(value, str) and value.startswith("$") and value[1:] in self.stash:
            return self.stash[value[1:]]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def value(self, path: str, default: Any = _NO_VALUE) -> Any:
        """The last response at a dotted path (``''`` or ``$body``: all of it)."""
        node = self.last
        if path in ("", "$body"):
            return node
        for part in re.split(r"(?<!\\)\.", path):
            key = self.resolve(part.replace("\\.", "."))
            if isinstance(node, list) and str(key).isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict) and key in node:
                node = node[key]
            elif default is not _NO_VALUE:
                return default
            else:
                raise StepFailed(f"no {path!r} in the response")
        return node


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return isinstance(a, numbers) and isinstance(b, numbers) and float(a) == float(b)
