"""The integer-code reductions behind the features agree with polars' string group_by on random data."""

from __future__ import annotations

import numpy as np
import polars as pl

from segsync.segments import grouping


def test_encode_numbers_keys_in_sorted_order_and_maps_every_row():
    a = pl.Series(["b:2", None, "a:10", "b:2"])
    b = pl.Series(["a:9", "c:1"])
    codes = grouping.encode(a, b)
    assert codes.keys.to_list() == ["a:10", "a:9", "b:2", "c:1"]
    assert codes.of[0].tolist() == [2, -1, 0, 2] and codes.of[1].tolist() == [1, 3]


def test_reductions_match_polars_group_by():
    rng = np.random.default_rng(3)
    n, customers = 20_000, 700
    frame = pl.DataFrame(
        {
            "customer": [f"k:{i}" for i in rng.integers(0, customers, n)],
            "day": rng.integers(19_000, 19_400, n),
            "cents": rng.integers(-5_000, 90_000, n),
        }
    )
    codes = grouping.encode(frame["customer"])
    code, size = codes.of[0], codes.size
    day, cents = frame["day"].to_numpy(), frame["cents"].to_numpy()
    expected = (
        frame.group_by("customer")
        .agg(
            pl.len().alias("n"),
            pl.col("cents").sum().alias("sum"),
            pl.col("day").min().alias("lo"),
            pl.col("day").max().alias("hi"),
            pl.col("day").unique().len().alias("days"),
            pl.col("day").unique().sort().diff().drop_nulls().median().alias("median_gap"),
        )
        .sort("customer")
    )
    assert codes.keys.to_list() == expected["customer"].to_list()
    assert grouping.count(code, size).tolist() == expected["n"].to_list()
    assert grouping.total(code, cents, size).tolist() == expected["sum"].to_list()
    assert grouping.smallest(code, day, size).tolist() == expected["lo"].to_list()
    assert grouping.largest(code, day, size).tolist() == expected["hi"].to_list()
    pairs = grouping.distinct_pairs(code, day, 19_000, 400)
    assert grouping.count(pairs.code, size).tolist() == expected["days"].to_list()
    repeat = np.ones(pairs.code.size, dtype=bool)
    repeat[pairs.starts] = False
    gaps = np.diff(pairs.value, prepend=0)[repeat]
    median = grouping.segment_median(pairs.code[repeat], gaps, 400, size)
    assert np.array_equal(median, expected["median_gap"].fill_null(np.nan).to_numpy(), equal_nan=True)
