"""Request parsing and ID windows take the fast path without changing a result: query strings parse exactly as
``urllib.parse.parse_qsl`` parses them, and ID filters (``>ID``, ``<=ID``, ...) find the rows a float
comparison finds."""

from __future__ import annotations

from urllib.parse import parse_qsl

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.sandbox.bitrix24.params import query_pairs
from segsync.sandbox.bitrix24.query import _bound

NEEDLES = st.one_of(
    st.integers(-10, 200).map(float),
    st.floats(-10, 200, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e300, -1e300]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 150), unique=True).map(sorted), NEEDLES, st.sampled_from(["left", "right"]))
def test_integer_bound_matches_float_search(ids, v, side):
    arr = np.array(ids, dtype=np.int64)
    assert _bound(arr, v, side) == int(np.searchsorted(arr.astype(float), v, side))


QUERY_CHARS = st.sampled_from([*"ab=&+%[]>!@_-.19", "%5B", "%5d", "%24", "%D0%9F", "%zz", "%", "€", " "])


@settings(max_examples=500, deadline=None)
@given(st.lists(QUERY_CHARS, max_size=40).map("".join))
def test_query_pairs_match_parse_qsl(query):
    assert query_pairs(query) == parse_qsl(query, keep_blank_values=True)


def test_a_batch_command_query():
    q = "crm.deal.list?filter%5B%3EID%5D=5&select[]=ID&select[]=TITLE&order[ID]=ASC&start=-1&x=a+b".partition("?")[2]
    assert query_pairs(q) == parse_qsl(q, keep_blank_values=True)
