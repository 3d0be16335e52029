"""gateway.cli.config: every GATEWAY_* name checked, flags over variables, one line per error."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.cli.config import (
    ConfigError,
    add_settings_flags,
    check_environment,
    load_settings,
    settings_from_args,
)
from gateway.settings import CacheSettings, iter_variables


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("GATEWAY_RERANK_WINDOW", "unknown setting (did you mean GATEWAY_RERANK__WINDOW?)"),
        ("GATEWAY_RERANKER__WINDOW", "unknown setting (did you mean GATEWAY_RERANK__WINDOW?)"),
        ("GATEWAY_RERANK__WINDWO", "unknown setting (did you mean GATEWAY_RERANK__WINDOW?)"),
        ("GATEWAY_UPSTREAM_URL", "unknown setting (did you mean GATEWAY_UPSTREAM__URLS?)"),
        ("GATEWAY_ZZZ", "unknown setting"),
        ("GATEWAY_RERANK__WINDOW__MAX", "unknown setting (did you mean GATEWAY_RERANK__WINDOW?)"),
    ],
)
def test_unknown_names_are_refused_with_a_suggestion(name: str, line: str) -> None:
    assert check_environment({name: "5"}) == [f"{name}: {line}"]


def test_every_documented_variable_and_whole_sections_are_known() -> None:
    environ = {name: "[]" for name, _, _ in iter_variables()}  # JSON for the JSON ones
    environ["GATEWAY_RERANK"] = '{"window": 5}'
    environ["gateway_rerank__window"] = "5"  # pydantic-settings ignores case
    environ["GATEWAY_RELEVANCE__PROFILES__PAPERS__WINDOW"] = "50"  # into a dict of models
    environ["GATEWAY_TEST_REDIS_URL"] = "the test suite's own"
    environ["OTHER_RERANK_WINDOW"] = "not ours"
    assert check_environment(environ) == []


@pytest.mark.parametrize(
    "name",
    [
        "GATEWAY_RELEVANCE__PROFILES",
        "GATEWAY_RELEVANCE__MODELS",
        "GATEWAY_SPEED__PROVIDER_OPTIONS",
        "GATEWAY_RELEVANCE__FIELD_MAX_CHARS",
        "GATEWAY_RERANK",
    ],
)
def test_bad_json_names_its_variable(name: str) -> None:
    (line,) = check_environment({name: '{"a": 1,}'})
    assert line.startswith(f"{name}: not valid JSON (Expecting property name")


def test_comma_lists_are_not_json() -> None:
    """CSV-list settings take `a,b` too: only values of JSON-only settings are parsed here."""
    assert check_environment({"GATEWAY_RERANK__FIELDS": "title,text"}) == []


@pytest.mark.parametrize(
    "url",
    ["http://cache:6379", "redis://cache:port/0", "redis://cache/db", "redis://", "unix://"],
)
def test_bad_redis_urls_are_refused_without_repeating_them(url: str) -> None:
    secret = url.replace("cache", "user:s3cret@cache")
    with pytest.raises(ConfigError) as caught:
        load_settings({"cache": {"redis_url": secret}})
    (line,) = caught.value.lines
    assert line.startswith("GATEWAY_CACHE__REDIS_URL: not a")
    assert "s3cret" not in line


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/7", "rediss://u:p@cache", "unix:///run/redis.sock"]
)
def test_good_redis_urls_pass(url: str) -> None:
    assert CacheSettings.model_validate({"redis_url": url}).redis_url is not None


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser)
    return parser.parse_args(argv)


def test_flags_win_over_variables(monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM__URLS", "http://env:9200")
    monkeypatch.setenv("GATEWAY_RERANK__WINDOW", "7")
    monkeypatch.setenv("GATEWAY_MODEL__PATH", str(model_dir))
    settings = settings_from_args(parse("--upstream", "http://a:1,http://b:2", "--port", "9300"))
    assert settings.upstream.urls == ["http://a:1", "http://b:2"]
    assert settings.server.port == 9300
    assert settings.rerank.window == 7  # no flag: the variable holds
    assert settings.model.path == model_dir
    hub = settings_from_args(parse("--model", "cross-encoder/ms-marco-MiniLM-L-12-v2"))
    assert hub.model.path is None  # a Hub id replaces the variable's directory
    assert hub.model.hub_id == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    local = settings_from_args(parse("--model", str(model_dir), "--fields", "body"))
    assert local.model.path == model_dir
    assert local.rerank.fields == ["body"]


def test_a_bad_flag_names_variable_and_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_args(parse("--port", "70000"))
    assert caught.value.lines == [
        "GATEWAY_SERVER__PORT (--port): Input should be less than or equal to 65535"
    ]
    with pytest.raises(ConfigError) as caught:
        settings_from_args(parse("--model", "./no-such-dir"))
    (line,) = caught.value.lines
    assert line.startswith("GATEWAY_MODEL__PATH (--model): no-such-dir is not a model directory")
