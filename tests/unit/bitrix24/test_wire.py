"""Wire format: batch command encoding and the documented answer shapes."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

from connectors.bitrix24.mapping import parse_money
from connectors.bitrix24.wire import decode_json, encode_query, parse_batch, parse_timing, unwrap_list

from .fakeportal import php_parse


def test_encoding_is_php_query_string_with_brackets_kept():
    query = encode_query(
        {"order": {"ID": "ASC"}, "filter": {">ID": 100, "<=ID": 2600}, "select": ["ID", "NAME"], "start": -1}
    )
    assert query == "order[ID]=ASC&filter[%3EID]=100&filter[%3C%3DID]=2600&select[0]=ID&select[1]=NAME&start=-1"
    assert php_parse(query) == {
        "order": {"ID": "ASC"},
        "filter": {">ID": "100", "<=ID": "2600"},
        "select": {"0": "ID", "1": "NAME"},
        "start": "-1",
    }


def test_none_is_sent_empty_never_the_text_none():
    query = encode_query({"id": 5, "fields": {"UF_CRM_SG_RFM": None, "UF_CRM_SG_ABC": ""}})
    assert "None" not in query
    assert dict(parse_qsl(query, keep_blank_values=True))["fields[UF_CRM_SG_RFM]"] == ""


def test_values_with_query_syntax_are_escaped():
    query = encode_query({"fields": {"TITLE": "A&B=C [1] 50%"}, "flag": True})
    assert dict(parse_qsl(query)) == {"fields[TITLE]": "A&B=C [1] 50%", "flag": "Y"}


def test_result_reference_survives_encoding():
    query = encode_query({"filter": {">ID": "$result[c0][items][49][id]"}})
    assert php_parse(query)["filter"][">ID"] == "$result[c0][items][49][id]"


def test_empty_nested_list_is_an_empty_array():
    assert encode_query({"select": []}) == "select[]="


def test_money_numbers_become_exact_decimals():
    body = decode_json(b'{"result": {"items": [{"opportunity": 19999.99}, {"opportunity": 9999999999999.99}]}}')
    assert [parse_money(i["opportunity"]) for i in body["result"]["items"]] == [
        Decimal("19999.99"),
        Decimal("9999999999999.99"),
    ]


def test_batch_success_shape_from_docs():
    body = {
        "result": {
            "result": {"get_user": {"ID": "1"}, "get_department": [{"ID": "1", "NAME": "DEMO"}]},
            "result_error": [],
            "result_total": {"get_department": 1},
            "result_next": [],
            "result_time": {
                "get_user": {
                    "start": 1724916859.46,
                    "finish": 1724916859.46,
                    "date_start": "2024-08-29T10:34:19+03:00",
                    "operating": 1.5,
                }
            },
        },
        "time": {"start": 1724916859.42, "date_start": "2024-08-29T10:34:19+03:00"},
    }
    reply = parse_batch(body, ["get_user", "get_department"])
    assert reply.results["get_department"] == [{"ID": "1", "NAME": "DEMO"}]
    assert reply.errors == {} and reply.nexts == {}
    assert reply.totals == {"get_department": 1}
    assert reply.times["get_user"].operating == 1.5
    assert reply.time.date_start is not None and reply.time.date_start.utcoffset().total_seconds() == 3 * 3600


def test_batch_errors_with_halt_zero_from_docs():
    body = {
        "result": {
            "result": [],
            "result_error": {"get_user": {"error": "insufficient_scope", "error_description": ""}},
            "result_total": [],
            "result_next": [],
            "result_time": [],
        }
    }
    reply = parse_batch(body, ["get_user", "get_department"])
    assert reply.results == {}
    assert reply.errors["get_user"].code == "insufficient_scope"


def test_numeric_keys_turned_into_lists_are_matched_to_unanswered_keys():
    # real answer (fast_bitrix24 #44): PHP listified result_error; keys are lost
    body = {
        "result": {
            "result": {"35943": {"ID": "35943"}},
            "result_error": [
                {"error": "", "error_description": "ID is not defined or invalid."},
                {"error": "", "error_description": "Not found"},
            ],
            "result_total": [],
            "result_next": [],
            "result_time": [],
        }
    }
    reply = parse_batch(body, ["0", "35943", "99"])
    assert set(reply.results) == {"35943"}
    assert reply.errors["0"].description == "ID is not defined or invalid."
    assert reply.errors["99"].description == "Not found"


def test_timing_accepts_iso_reset_time_and_missing_fields():
    timing = parse_timing(
        {"date_start": "2024-08-26T16:11:36+03:00", "operating_reset_at": "2024-08-26T16:11:37+03:00", "operating": 3.3}
    )
    assert timing.operating_reset_at == 1724677897.0
    assert parse_timing({}).operating is None
    assert parse_timing(None).date_start is None


def test_unwrap_list_shapes():
    assert unwrap_list([{"ID": "1"}], None) == [{"ID": "1"}]
    assert unwrap_list({"items": [{"id": 1}]}, "items") == [{"id": 1}]
    assert unwrap_list({"0": {"ID": "1"}, "1": {"ID": "2"}}, None) == [{"ID": "1"}, {"ID": "2"}]
    assert unwrap_list(True, None) is None
