"""Settings for the commands: the environment checked strictly, flags over it, one line per error.

pydantic-settings reads only the variables it knows, so a misspelt one
(``GATEWAY_RERANK_WINDOW``, ``GATEWAY_RERANKER__WINDOW``) would be ignored in
silence; :func:`check_environment` refuses every ``GATEWAY_*`` name that sets
nothing, with a "did you mean", and names the variable whose JSON does not parse.
``GATEWAY_TEST_*`` belongs to the test suite (``tests/conftest.py``) and is left alone.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode, SettingsError

from gateway.settings import (
    BACKEND_ERROR,
    BACKENDS,
    ENV_DELIMITER,
    ENV_PREFIX,
    Settings,
    env_name,
    section_fields,
)

EXIT_CONFIG = 2
TEST_PREFIX = ENV_PREFIX + "TEST_"

Overrides = dict[str, dict[str, Any]]  # section → field → value (from command-line flags)


class ConfigError(Exception):
    """The configuration cannot be used; one line per problem, each naming its variable."""

    exit_status = EXIT_CONFIG

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _known() -> dict[str, FieldInfo]:
    """Every variable that sets something: ``GATEWAY_<SECTION>`` (JSON) and its fields."""
    out: dict[str, FieldInfo] = {}
    for section, info in Settings.model_fields.items():
        out[(ENV_PREFIX + section).upper()] = info
        for name, field in section_fields(info.annotation).items():
            out[env_name(section, name)] = field
    return out


def _is_complex(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _is_complex(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = get_origin(annotation)
    if origin in (list, dict, set, tuple):
        return True
    if origin in (Union, types.UnionType):
        return any(_is_complex(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


def _decodes_json(field: FieldInfo) -> bool:
    """Whether pydantic-settings parses this variable's value as JSON."""
    return NoDecode not in field.metadata and _is_complex(field.annotation)


def _did_you_mean(name: str, known: list[str]) -> str:
    """The closest known variable, compared without the prefix all of them share."""
    cut = len(ENV_PREFIX)
    close = difflib.get_close_matches(name[cut:], [k[cut:] for k in known], n=1, cutoff=0.6)
    return f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""


def check_environment(environ: Mapping[str, str]) -> list[str]:
    """One line per ``GATEWAY_*`` variable that is unknown or holds JSON that does not parse."""
    known = _known()
    lines = []
    for key in sorted(environ):
        name = key.upper()  # pydantic-settings matches names case-insensitively
        if not name.startswith(ENV_PREFIX) or name.startswith(TEST_PREFIX):
            continue
        top = ENV_DELIMITER.join(name.split(ENV_DELIMITER)[:2])
        field = known.get(top)
        if field is None or (top != name and not _is_complex(field.annotation)):
            # Deeper names (``..__PROFILES__PAPERS__WINDOW``) only go into dicts and models.
            lines.append(f"{key}: unknown setting{_did_you_mean(name, list(known))}")
        elif top == name and _decodes_json(field):
            try:
                json.loads(environ[key])
            except ValueError as exc:  # the message gives a position, never the value
                lines.append(f"{key}: not valid JSON ({exc})")
    return lines


def _variable_path(loc: tuple[int | str, ...], kind: str) -> list[str]:
    """The names in an error's location that make its variable: no list positions, no backend
    tag (``model.tei.tei_url`` is MODEL__TEI_URL), and ``backend`` for a backend none has."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    if len(names) > 1 and names[0] == "model" and names[1] in BACKENDS:
        del names[1]
    if kind == BACKEND_ERROR and len(names) == 1:
        names.append("backend")
    return names


def describe_config_error(exc: ValidationError, flags: Mapping[str, str] | None = None) -> str:
    """One line per bad variable, named as the operator sets it (and the flag that set it)."""
    lines = []
    for err in exc.errors():
        loc = _variable_path(err["loc"], err["type"])
        name = ENV_PREFIX + ENV_DELIMITER.join(loc[:2]).upper() if loc else ENV_PREFIX + "*"
        message = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        message = message.removeprefix("Value error, ")
        flag = (flags or {}).get(name)
        label = f"{name} ({flag})" if flag else name
        lines.append(f"{label}: {' '.join(message.split())}")
    return "\n".join(lines)


def _settings_error_line(exc: SettingsError) -> str:
    """pydantic-settings names the field it could not parse; say which variable that is."""
    found = re.search(r'field "([^"]+)"', str(exc))
    name = (ENV_PREFIX + found.group(1)).upper() if found else ENV_PREFIX + "*"
    cause = exc.__cause__
    why = f"not valid JSON ({cause})" if isinstance(cause, ValueError) else "cannot be parsed"
    return f"{name}: {why}"


def load_settings(
    overrides: Overrides | None = None, flags: Mapping[str, str] | None = None
) -> Settings:
    """``Settings`` from the environment, ``overrides`` (command-line flags) winning over it.

    ``flags`` maps a variable to the flag that set it, for the error lines.
    Raises ``ConfigError``.
    """
    problems = check_environment(os.environ)
    if problems:
        raise ConfigError(problems)
    try:
        values: dict[str, Any] = dict(overrides or {})
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_config_error(exc, flags).splitlines()) from exc
    except SettingsError as exc:
        raise ConfigError([_settings_error_line(exc)]) from exc


# --flag: (section, field, help). Each is also its variable; the flag wins.
FLAGS = {
    "--upstream": ("upstream", "urls", "search cluster URL(s), comma-separated"),
    "--fields": ("rerank", "fields", "document fields scored, comma-separated"),
    "--model": ("model", "path", "model directory, or a Hugging Face Hub id (ONNX export)"),
    "--model-file": ("model", "file", "ONNX file in the model directory (quantized variants)"),
    "--device": ("model", "device", "cpu, cuda or openvino"),
    "--host": ("server", "host", "address to listen on"),
    "--port": ("server", "port", "port to listen on"),
}


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each flag overrides its variable)")
    for flag, (section, field, help_text) in FLAGS.items():
        name = env_name(section, field)
        if flag == "--model":
            name += " or GATEWAY_MODEL__HUB_ID"
        metavar = "DIR_OR_HUB_ID" if flag == "--model" else field.upper()
        group.add_argument(flag, metavar=metavar, help=f"{help_text} [{name}]")


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or Path(value).expanduser().is_dir()


def with_flags(message: str, args: argparse.Namespace) -> str:
    """``message`` with each variable a flag set followed by that flag, as the user typed it:
    ``GATEWAY_MODEL__FILE=x (--model-file) is not in ...``."""
    for name, flag in settings_overrides(args)[1].items():
        found = re.compile(rf"\b{name}(?![A-Z0-9_])(=\S+)?")
        message = found.sub(rf"\g<0> ({flag})", message)
    return message


def settings_overrides(args: argparse.Namespace) -> tuple[Overrides, dict[str, str]]:
    """The flags given as settings, and for each variable the flag that set it."""
    overrides: Overrides = {}
    flags: dict[str, str] = {}
    for flag, (section, field, _) in FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is None:
            continue
        target = field
        if flag == "--model" and not _looks_like_path(value):
            target = "hub_id"
            overrides.setdefault(section, {})["path"] = None
        elif flag == "--model":
            value = str(Path(value).expanduser())
        overrides.setdefault(section, {})[target] = value
        flags[env_name(section, target)] = flag
    return overrides, flags


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings: environment, then the flags given (``--model`` picks path or Hub id)."""
    return load_settings(*settings_overrides(args))
