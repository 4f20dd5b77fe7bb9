"""Data quality: likely duplicates, customers nobody can reach, and customers silent for a long time.

Pure and vectorized; the one implementation behind both ``segsync quality`` and the report. Keys are
normalized so that the CRM's free-form input still matches: phones to digits with the Russian trunk prefix
unified (``8 912 …`` = ``+7 912 …``), e-mails lower-cased and trimmed (an address needs a dot in its domain:
``ivan@mailru`` reaches nobody), names lower-cased with ``ё`` → ``е`` and spaces collapsed.

Two choices, made for the sales director who reads the result:

* duplicates are searched among *every* customer in the store, not only the analysed ones (two records of one
  person at a client company split its history just as much), and only between customers of the same kind (a
  contact sharing its company's phone is normal);
* a company is *reachable* when it or one of its contacts has a valid phone or e-mail: managers call the
  people at a company, and CRMs usually keep the phones on the contacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl


@dataclass
class Quality:
    duplicates: pl.DataFrame  # group, match (phone|email|name_company), key, customer
    unreachable: pl.DataFrame  # customer
    inactive: pl.DataFrame  # customer, last_activity, days_inactive
    counts: dict[str, int] = field(default_factory=dict)


def normalize_phone(phone: pl.Expr) -> pl.Expr:
    digits = phone.str.replace_all(r"\D", "")
    unified = (
        pl.when((digits.str.len_chars() == 11) & digits.str.starts_with("8"))
        .then(pl.lit("7") + digits.str.slice(1))
        .when((digits.str.len_chars() == 10) & digits.str.starts_with("9"))
        .then(pl.lit("7") + digits)
        .otherwise(digits)
    )
    return pl.when(unified.str.len_chars() >= 7).then(unified).otherwise(None)


def normalize_email(email: pl.Expr) -> pl.Expr:
    clean = email.str.strip_chars().str.to_lowercase()
    return pl.when(clean.str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")).then(clean).otherwise(None)


def normalize_name(name: pl.Expr) -> pl.Expr:
    clean = name.str.to_lowercase().str.replace_all("ё", "е").str.replace_all(r"[\s\"'«»]+", " ").str.strip_chars()
    return pl.when(clean.str.len_chars() > 0).then(clean).otherwise(None)


def _keys(customers: pl.DataFrame, column: str, match: str, normalize) -> pl.DataFrame:
    return (
        customers.select("customer", "kind", pl.col(column).alias("value"))
        .explode("value")
        .select("customer", "kind", pl.lit(match).alias("match"), normalize(pl.col("value")).alias("key"))
        .drop_nulls("key")
    )


def duplicate_groups(customers: pl.DataFrame) -> pl.DataFrame:
    """Customers of the same kind sharing a normalized phone, e-mail, or name (contacts: name within the same
    company). ``customers``: customer, kind, name, company_id, phones, emails. Out: group, match, key, customer."""
    names = customers.select(
        "customer",
        "kind",
        pl.lit("name_company").alias("match"),
        pl.when(pl.col("kind") == "contact")
        .then(
            pl.when(pl.col("company_id").is_not_null()).then(
                normalize_name(pl.col("name")) + pl.lit(" @") + pl.col("company_id").cast(pl.String)
            )
        )
        .otherwise(normalize_name(pl.col("name")))
        .alias("key"),
    ).drop_nulls("key")
    keys = pl.concat(
        [
            _keys(customers, "phones", "phone", normalize_phone),
            _keys(customers, "emails", "email", normalize_email),
            names,
        ]
    )
    groups = (
        keys.unique()
        .group_by("kind", "match", "key")
        .agg(pl.col("customer").unique().sort())
        .filter(pl.col("customer").list.len() > 1)
        .sort("match", "kind", "key")
        .with_row_index("group", offset=1)
    )
    return groups.explode("customer").select(pl.col("group").cast(pl.Int64), "match", "key", "customer")


def _has_contact_point() -> pl.Expr:
    phone = pl.col("phones").list.eval(normalize_phone(pl.element())).list.drop_nulls().list.len() > 0
    email = pl.col("emails").list.eval(normalize_email(pl.element())).list.drop_nulls().list.len() > 0
    return (phone | email).fill_null(False)


def unreachable(analysed: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """The ``analysed`` customers nobody can call or write to: no valid phone or e-mail on the customer nor,
    for a company, on any of its contacts. ``customers``: every customer of the store (customer, company_id,
    phones, emails). Out: customer, sorted."""
    reachable = customers.filter(_has_contact_point())
    via_contacts = reachable.filter(pl.col("company_id").is_not_null()).select(
        (pl.lit("company:") + pl.col("company_id").cast(pl.String)).alias("customer")
    )
    ok = pl.concat([reachable.select("customer"), via_contacts]).unique()
    return analysed.select("customer").join(ok, on="customer", how="anti").sort("customer")


def data_quality(
    customers: pl.DataFrame,
    activity: pl.DataFrame,
    as_of: datetime,
    inactive_days: float,
    *,
    store: pl.DataFrame | None = None,
) -> Quality:
    """``customers``: the analysed customers — customer, kind, name, company_id, phones, emails, created_at;
    ``activity``: customer, last_purchase, last_touch (any may be null); ``store``: every customer of the
    store (same columns, ``created_at`` not needed), by default ``customers``. Duplicates are searched in
    ``store``; unreachable and inactive are counted among ``customers``."""
    everyone = customers if store is None else store
    duplicates = duplicate_groups(everyone)
    missing = unreachable(customers, everyone)
    last = (
        customers.select("customer", "created_at")
        .join(activity.select("customer", "last_purchase", "last_touch"), on="customer", how="left")
        .with_columns(last_activity=pl.max_horizontal("last_purchase", "last_touch").fill_null(pl.col("created_at")))
    )
    age = (pl.lit(as_of) - pl.col("last_activity")).dt.total_seconds() / 86400.0
    inactive = (
        last.with_columns(days_inactive=age)
        .filter(pl.col("days_inactive").is_null() | (pl.col("days_inactive") > inactive_days))
        .select("customer", "last_activity", "days_inactive")
        .sort("customer")
    )
    counts = {
        "duplicate_groups": int(duplicates["group"].n_unique()) if duplicates.height else 0,
        "duplicate_customers": int(duplicates["customer"].n_unique()) if duplicates.height else 0,
        "unreachable": missing.height,
        "inactive": inactive.height,
    }
    return Quality(duplicates=duplicates, unreachable=missing, inactive=inactive, counts=counts)
