"""Document text: fields, templates, nested and array values, caps, highlights."""

from __future__ import annotations

from typing import Any

from gateway.rerank.documents import DocumentSpec, field_values, render, segments, template_fields

HIT: dict[str, Any] = {
    "_id": "1",
    "_source": {
        "title": "Whales",
        "text": "Whales breathe air through a blowhole.",
        "authors": [{"name": "Ann"}, {"name": ["Bob", "Cy"]}, {"age": 3}],
        "tags": ["ocean", "", 7, True],
        "meta": {"lang": "en"},
    },
    "fields": {"summary": ["from fields"]},
}


def test_field_values_nested_arrays_and_fields_first() -> None:
    assert field_values(HIT, "authors.name") == ["Ann", "Bob", "Cy"]
    assert field_values(HIT, "tags") == ["ocean", "7"]
    assert field_values(HIT, "meta.lang") == ["en"]
    assert field_values(HIT, "summary") == ["from fields"]
    assert field_values(HIT, "missing.path") == []


def test_default_is_fields_joined() -> None:
    assert render(HIT, DocumentSpec()) == "Whales Whales breathe air through a blowhole."
    assert render(HIT, DocumentSpec(max_chars=6)) == "Whales"


def test_template_with_nested_fields_caps_and_literal_braces() -> None:
    spec = DocumentSpec(
        template="{title}. {text} {{by}} {authors.name}",
        field_max_chars={"text": 6},
    )
    assert render(HIT, spec) == "Whales. Whales {by} Ann Bob Cy"
    assert spec.read_fields == ("title", "text", "authors.name")
    assert template_fields("{ a }{b}{{c}}") == ["a", "b"]


def test_template_empty_placeholders_trim_and_all_empty_is_no_text() -> None:
    spec = DocumentSpec(template="{nothing}. {text}")
    assert render(HIT, spec) == "Whales breathe air through a blowhole."
    assert render(HIT, DocumentSpec(template="{nothing}: {none}")) == ""


def test_highlight_fragments_used_when_asked_and_present() -> None:
    hit = {**HIT, "highlight": {"text": ["<em>Whales</em> breathe", "a <em>blowhole</em>"]}}
    spec = DocumentSpec(highlight=True)
    assert segments([hit, HIT, {"_source": {}}], spec) == [
        ["Whales breathe", "a blowhole"],
        ["Whales Whales breathe air through a blowhole."],
        [],
    ]
    assert segments([hit], DocumentSpec()) == [["Whales Whales breathe air through a blowhole."]]
