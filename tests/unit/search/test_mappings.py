"""Reading ``_mapping`` answers and choosing the fields an index's text is in."""

from __future__ import annotations

from typing import Any

from gateway.search.mappings import IndexMapping, choose, describe, parse

CONFIGURED = ("title", "text")


def answer(**indices: dict[str, Any]) -> dict[str, Any]:
    return {name: {"mappings": {"properties": props}} for name, props in indices.items()}


NEWS = {
    "body": {"type": "text"},
    "headline": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
    "author": {"properties": {"name": {"type": "text"}, "id": {"type": "keyword"}}},
    "comments": {"type": "nested", "properties": {"said": {"type": "text"}}},
    "note": {"type": "match_only_text"},
    "code": {"type": "keyword"},
}


def test_parse_walks_objects_not_multi_fields_nor_nested() -> None:
    (news,) = parse(answer(news=NEWS))
    assert news.index == "news"
    assert news.paths == (
        "body",
        "headline",
        "author",
        "author.name",
        "author.id",
        "comments",
        "note",
        "code",
    )
    assert news.text_fields() == ("headline", "author.name", "body", "note")


def test_parse_reads_the_typed_shape_and_skips_what_is_not_a_mapping() -> None:
    body = {
        "old": {"mappings": {"_doc": {"properties": {"story": {"type": "text"}}}}},
        "broken": {"mappings": "?"},
        "empty": {"mappings": {}},
    }
    got = {m.index: m.text_fields() for m in parse(body)}
    assert got == {"empty": (), "old": ("story",)}
    assert parse(["not", "an", "object"]) == []


def test_many_text_fields_are_capped_title_like_first() -> None:
    props = {f"f{i}": {"type": "text"} for i in range(10)} | {"subject": {"type": "text"}}
    (m,) = parse(answer(many=props))
    assert m.text_fields() == ("subject", "f0", "f1", "f2", "f3", "f4")


def test_a_configured_object_path_counts_as_present() -> None:
    m = IndexMapping("x", (("title", "object"), ("title.en", "text")))
    assert m.has_any(["title"])
    assert not m.has_any(["titles", "text"])
    assert not IndexMapping("y", (("subtitle", "text"),)).has_any(["title"])


def test_configured_fields_are_kept_where_one_exists() -> None:
    choice = choose(CONFIGURED, parse(answer(docs={"title": {"type": "keyword"}, **NEWS})))
    assert choice.fields == CONFIGURED
    assert choice.configured == ("docs",)
    assert not choice.found and not choice.textless


def test_several_indices_union_their_own_fields() -> None:
    indices = parse(
        answer(
            docs={"title": {"type": "text"}, "text": {"type": "text"}},
            news={"body": {"type": "text"}, "headline": {"type": "text"}},
            prices={"price": {"type": "float"}},
        )
    )
    choice = choose(CONFIGURED, indices)
    assert choice.fields == ("title", "text", "headline", "body")
    assert dict(choice.found) == {"news": ("headline", "body")}
    assert dict(choice.textless) == {"prices": ("price",)}
    line = describe(choice, CONFIGURED)
    assert line == (
        "title, text in [docs]; headline, body (from its mapping) in [news];"
        " nothing in [prices] (no text fields; it has: price)"
    )


def test_without_any_configured_index_the_configured_fields_are_not_asked_for() -> None:
    choice = choose(CONFIGURED, parse(answer(news={"body": {"type": "text"}})))
    assert choice.fields == ("body",)


def test_nothing_usable_keeps_the_configured_fields_and_names_what_exists() -> None:
    props = {f"n{i:02}": {"type": "long"} for i in range(25)}
    choice = choose(CONFIGURED, parse(answer(nums=props)))
    assert choice.fields == CONFIGURED
    line = describe(choice, CONFIGURED)
    assert line.startswith("nothing in [nums] (no text fields; it has: n00, n01,")
    assert line.endswith("n19, ... 5 more)")
    assert describe(choose(CONFIGURED, []), CONFIGURED) == "title, text (no index matches yet)"


def _one(mappings: dict[str, Any]) -> IndexMapping:
    (index,) = parse({"docs": {"mappings": mappings}})
    return index


PLAIN = {"title": {"type": "text"}, "text": {"type": "text"}}


def test_a_whole_source_holds_its_top_level_mapped_fields() -> None:
    docs = _one({"properties": {**PLAIN, "meta": {"properties": {"t": {"type": "text"}}}}})
    assert docs.whole_source
    assert docs.in_source("title") and docs.in_source("text")
    assert not docs.in_source("meta")  # an object
    assert not docs.in_source("meta.t")  # dotted: _source may hold it either way
    assert not docs.in_source("body")  # not mapped


def test_what_the_fields_option_reads_elsewhere_is_not_in_source() -> None:
    props = {
        **PLAIN,
        "headline": {"type": "alias", "path": "title"},
        "text": {"type": "text", "fields": {"en": {"type": "text"}}},
    }
    props["title"] = {"type": "text", "copy_to": ["all"]}
    props["all"] = {"type": "text"}  # filled by copy_to: never in _source
    docs = _one({"properties": props, "runtime": {"day": {"type": "keyword"}}})
    assert docs.in_source("title")
    assert not docs.in_source("all")
    assert not docs.in_source("headline")
    assert not docs.in_source("text.en")
    assert not docs.in_source("day")
    assert docs.in_source("text")
    # Unlisted as paths, but ``fields`` returns them: never read from _source.
    assert not docs.reads_alike("text.en") and not docs.reads_alike("headline")
    assert not docs.reads_alike("all")


def test_a_filtered_disabled_or_unmapped_source_is_not_whole() -> None:
    for source in (
        {"enabled": False},
        {"includes": ["title"]},
        {"excludes": ["text"]},
        {"mode": "synthetic"},
    ):
        assert not _one({"_source": source, "properties": PLAIN}).in_source("title"), source
    for dynamic in (False, "false", "runtime"):
        assert not _one({"dynamic": dynamic, "properties": PLAIN}).whole_source, dynamic
    assert _one(
        {"dynamic": "strict", "_source": {"enabled": True}, "properties": PLAIN}
    ).whole_source


def test_only_plain_text_fields_read_alike_from_source() -> None:
    props = {
        "title": {"type": "constant_keyword", "value": "paper"},  # filled from the mapping
        "text": {"type": "keyword", "ignore_above": 10},  # ``fields`` drops long values
        "body": {"type": "text"},
        "shadowed": {"type": "text"},
    }
    runtime = {"day": {"type": "keyword"}, "shadowed": {"type": "keyword"}}
    docs = _one({"properties": props, "runtime": runtime})
    assert docs.reads_alike("body")
    assert not docs.reads_alike("title") and not docs.reads_alike("text")
    assert not docs.reads_alike("day")  # computed: only ``fields`` has it
    assert not docs.reads_alike("shadowed")  # a runtime field over a mapped one
    assert docs.reads_alike("nowhere")  # neither mapped nor computed: no text either way
    assert docs.reads_alike("body.raw")  # no such multi-field: nothing either way
    assert not _one({"dynamic": False, "properties": props}).reads_alike("nowhere")


def test_a_configured_multi_field_is_mapped() -> None:
    props = {
        "title": {"type": "text", "fields": {"english": {"type": "text"}}},
        "meta": {"properties": {"note": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}},
    }
    docs = _one({"properties": props})
    assert docs.has_any(["title.english"]) and docs.has_any(["meta.note.raw"])
    assert not docs.has_any(["title.french"])
    assert docs.text_fields() == ("title", "meta.note")  # discovery reads no multi-field
    assert choose(["title.english"], [docs]).fields == ("title.english",)


def test_stored_fields_and_multi_fields_are_read_where_fields_reads_them() -> None:
    props = {
        "title": {
            "type": "text",
            "store": True,
            "fields": {"raw": {"type": "keyword", "store": True}},
        },
        "meta": {"properties": {"note": {"type": "text", "store": True}}},
        "comments": {"type": "nested", "properties": {"c": {"type": "text", "fields": {"r": {}}}}},
    }
    docs = _one({"properties": props})
    assert docs.stored == {"title", "title.raw", "meta.note"}
    assert docs.multi == {"title.raw"}  # not below ``nested``: ``fields`` returns objects there
