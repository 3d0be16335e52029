"""Settings: environment parsing, validation messages, docs/configuration.md table in sync."""

from __future__ import annotations

import pytest

from gateway.settings import Settings
from ops.env_table import TABLE_FILE, readme_table, table
from tests.doubles.commands import run_main


def test_readme_table_matches_settings() -> None:
    assert readme_table(TABLE_FILE.read_text()) == table(), "run: python -m ops.env_table --write"


def test_env_nested_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM__URLS", "http://a:9200/, https://b:9200")
    monkeypatch.setenv("GATEWAY_RERANK__FIELDS", '["title","body.text"]')
    monkeypatch.setenv("GATEWAY_RERANK__WINDOW", "50")
    s = Settings()
    assert s.upstream.urls == ["http://a:9200", "https://b:9200"]
    assert s.rerank.fields == ["title", "body.text"]
    assert s.rerank.window == 50


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GATEWAY_RERANK__WINDOW": "lots"}, "GATEWAY_RERANK__WINDOW"),
        ({"GATEWAY_UPSTREAM__URLS": "ftp://x"}, "GATEWAY_UPSTREAM__URLS"),
        ({"GATEWAY_MODEL__PATH": "/nonexistent"}, "GATEWAY_MODEL__PATH"),
        ({"GATEWAY_SERVER__PORT": "70000"}, "GATEWAY_SERVER__PORT"),
        ({"GATEWAY_MODEL__DEVICE": "tpu"}, "GATEWAY_MODEL__DEVICE"),
    ],
)
def test_bad_setting_exits_2_naming_the_variable(env: dict[str, str], variable: str) -> None:
    done = run_main(env)
    assert done.returncode == 2
    assert variable in done.stderr
    assert "Traceback" not in done.stderr
