"""The synthetic world: deterministic, sized as promised, dirty where promised, truth consistent with the data."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl
import pytest

from segsync.sandbox.data import SIZE_PRESETS, generate_world, plan_size

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return generate_world(seed=7, size="small", now=NOW)


def test_same_seed_same_world_and_other_seed_differs():
    a = generate_world(seed=3, size="tiny", now=NOW)
    b = generate_world(seed=3, size="tiny", now=NOW)
    c = generate_world(seed=4, size="tiny", now=NOW)
    for name in ("managers", "companies", "contacts", "deals", "activities", "truth"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert not a.deals.equals(c.deals)
    assert a.params == b.params


def test_now_defaults_to_today_midnight_utc():
    w = generate_world(seed=1, size="tiny")
    assert w.now.tzinfo is not None and (w.now.hour, w.now.minute, w.now.second) == (0, 0, 0)


@pytest.mark.parametrize("size", ["tiny", "bench-b24"])
def test_preset_counts(size):
    w = generate_world(seed=1, size=size, now=NOW)
    p = SIZE_PRESETS[size]
    assert w.truth.height == p.customers
    assert w.companies.height == p.companies
    assert w.contacts.height == p.contacts
    assert w.deals.height == p.deals


def test_customers_rescales_a_preset():
    w = generate_world(seed=1, size="demo", customers=500, now=NOW)
    assert w.truth.height == 500
    assert 2000 <= w.deals.height <= 3000


def test_unknown_size_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown size"):
        plan_size("gigantic")


def test_ids_are_unique_and_grow_with_creation_time(world):
    for name in ("companies", "contacts", "deals"):
        df = getattr(world, name).sort("id")
        assert df["id"].n_unique() == df.height
        assert df["id"].to_list() == list(range(1, df.height + 1))
        assert df["created_at"].is_sorted(), name


def test_references_resolve(world):
    contact_ids = set(world.contacts["id"].to_list())
    company_ids = set(world.companies["id"].to_list())
    manager_ids = set(world.managers["id"].to_list())
    assert set(world.deals["contact_ids"].explode().drop_nulls().to_list()) <= contact_ids
    assert set(world.deals["company_id"].drop_nulls().to_list()) <= company_ids
    assert set(world.contacts["company_id"].drop_nulls().to_list()) <= company_ids
    for name in ("companies", "contacts", "deals", "activities"):
        assert set(getattr(world, name)["responsible_id"].to_list()) <= manager_ids
    stages = world.stages.select("pipeline_id", "code").unique()
    assert (
        world.deals.select("pipeline_id", pl.col("stage_code").alias("code"))
        .unique()
        .join(stages, on=["pipeline_id", "code"], how="anti")
        .is_empty()
    )


def test_content_is_russian_b2b_and_b2c(world):
    assert world.companies["title"].str.contains(r"^(ООО|АО|ПАО|ИП) ").all()
    assert world.contacts["name"].str.contains("[А-Яа-яЁё]").sum() > 0.9 * world.contacts.height
    per_company = world.contacts.filter(pl.col("company_id").is_not_null()).group_by("company_id").len()
    assert per_company["len"].max() >= 3
    assert world.contacts.filter(pl.col("company_id").is_null()).height > 0  # B2C
    assert world.pipelines.height in (2, 3)
    assert set(world.stages["semantic"]) == {"open", "won", "lost"}
    assert not world.managers["active"].all()
    assert set(world.activities["kind"]) == {"call", "meeting", "email"}
    assert set(world.deals["status"]) == {"won", "open", "lost"}


def test_dirt_is_present_and_tagged(world):
    deals, contacts = world.deals, world.contacts
    dups = contacts.filter(pl.col("duplicate_of").is_not_null())
    assert dups.height > 0 and (dups["dirt"] == "duplicate").all()
    orig = contacts.select(pl.col("id").alias("duplicate_of"), pl.col("phones").alias("orig_phones"))
    pairs = dups.join(orig, on="duplicate_of")
    digits = lambda s: re.sub(r"\D", "", s)[-10:]  # noqa: E731
    same_number_other_format = [
        p[0] != o[0] and digits(p[0]) == digits(o[0])
        for p, o in zip(pairs["phones"].to_list(), pairs["orig_phones"].to_list(), strict=True)
        if p and o
    ]
    assert same_number_other_format and all(same_number_other_format)
    assert contacts.filter(pl.col("dirt") == "empty_name")["name"].eq("").all()
    dirty_amounts = deals.filter(pl.col("dirt") == "amount_text")["amount_text"]
    assert dirty_amounts.len() > 0 and not dirty_amounts.str.contains(r"^\d+\.\d{2}$").any()
    assert deals.filter(pl.col("dirt").is_null())["amount_text"].str.contains(r"^\d+\.\d{2}$").all()
    assert deals.filter(pl.col("currency") != world.base_currency).height > 0
    no_customer = deals.filter(pl.col("dirt") == "no_customer")
    assert no_customer.height > 0
    assert no_customer["company_id"].is_null().all() and (no_customer["contact_ids"].list.len() == 0).all()
    future = deals.filter(pl.col("dirt") == "future_date")
    assert future.height > 0 and (future["closed_at"] > world.now).all()
    assert world.contacts["emails"].explode().drop_nulls().str.contains("[A-Z]").any()


def _process_deals(world):
    """Won deals of the purchase process attributed to their customer (company, else primary contact)."""
    won = world.deals.filter(
        (pl.col("status") == "won") & ~pl.col("dirt").is_in(["no_customer", "future_date"]).fill_null(False)
    )
    return won.select(
        pl.when(pl.col("company_id").is_not_null())
        .then(pl.lit("company"))
        .otherwise(pl.lit("contact"))
        .alias("customer_kind"),
        pl.coalesce("company_id", pl.col("contact_ids").list.first()).alias("customer_id"),
        "closed_at",
    )


def test_truth_matches_the_deals(world):
    got = (
        _process_deals(world)
        .group_by("customer_kind", "customer_id")
        .agg(pl.len().alias("n"), pl.col("closed_at").min().alias("first"), pl.col("closed_at").max().alias("last"))
    )
    truth = world.truth.join(got, on=["customer_kind", "customer_id"], how="left")
    buyers = truth.filter(pl.col("n_purchases") > 0)
    assert (buyers["n"] == buyers["n_purchases"]).all()
    assert (buyers["first"] == buyers["first_purchase"]).all()
    assert (buyers["last"] == buyers["last_purchase"]).all()
    leads = truth.filter(pl.col("n_purchases") == 0)
    assert leads.height > 0 and leads["n"].is_null().all() and leads["alive"].is_null().all()
    assert buyers["alive"].is_not_null().all() and 0.2 < buyers["alive"].mean() < 0.95
    assert (buyers["last_purchase"] <= world.now).all()
    assert world.params["model"] == "BG/NBD"
    assert {"r", "alpha", "a", "b"} <= set(world.params)


def test_truth_rates_follow_the_declared_population(world):
    """Sample moments of the true per-customer rates and dropouts match Gamma(r, alpha) and Beta(a, b)."""
    p = world.params
    buyers = world.truth.filter(pl.col("n_purchases") > 0)
    mean_rate = buyers["purchase_rate"].mean()
    assert mean_rate == pytest.approx(p["r"] / p["alpha"], rel=0.15)
    assert buyers["dropout_p"].mean() == pytest.approx(p["a"] / (p["a"] + p["b"]), rel=0.1)
