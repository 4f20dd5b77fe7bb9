"""``json_fields`` (one JSON parse for all attribute keys) gives exactly what per-key ``json_path_match`` gives."""

from __future__ import annotations

import polars as pl

from segsync.compute.bulk import json_fields

DOCS = pl.Series(
    [
        '{"city": "Казань", "meta": {"city": 1}, "size": 1.50}',
        '{"city": 5, "size": true, "note": "a \\"quoted\\" text"}',
        None,
        "{}",
        '{"city" : {"k": [1, 2]}, "size": null}',
        '{"size": 1.0, "city": "q\\"z"}',
        '{"city": -1e300, "note": null}',
    ]
)


def test_json_fields_match_json_path_match_value_for_value():
    got = json_fields(DOCS, ["city", "size", "note", "absent"])
    for key in ("city", "size", "note", "absent"):
        assert got[key].to_list() == DOCS.str.json_path_match(f"$.{key}").to_list(), key


def test_invalid_json_falls_back_to_the_lenient_path():
    docs = pl.Series(['{"city": "x"}', "not json", '{"city": 2.50}'])
    assert json_fields(docs, ["city"])["city"].to_list() == ["x", None, "2.5"]


def test_paths_override_for_keys_that_are_not_identifiers():
    docs = pl.Series(['{"UF CRM 1": "y"}', "{}"])
    out = json_fields(docs, ["UF CRM 1"], paths={"UF CRM 1": "$['UF CRM 1']"})
    assert out["UF CRM 1"].to_list() == ["y", None]
