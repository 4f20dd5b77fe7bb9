"""Generated CRM records through both connectors' mappers: a record maps or is quarantined with a reason, never
anything else.

Records follow the documented shapes (Bitrix24: ``crm.contact.list`` / ``crm.company.list`` rows with UPPER_CASE
string values and PHONE/EMAIL multi-fields, ``crm.item.list`` deal items in typed camelCase; amoCRM v4: contacts,
companies and leads with ``custom_fields_values`` and ``_embedded``), and any value may be swapped for junk of
another JSON type. The property: the mapper returns a normalized record whose ids, dates and amounts are sane and
that converts to a store row, or it takes the typed quarantine path (Bitrix24 ``Rejected``, amoCRM
``RecordRejected``) with a non-empty reason. Any other exception is a crash. Bounded: a few hundred records per
connector; full: ≥ 5,000 each.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.amocrm.mapping import MappingOptions, map_customer, map_deal
from connectors.bitrix24 import mapping as b24
from segsync.contract import Customer, Deal, Rejected
from segsync.errors import RecordRejected
from segsync.sync import rows

from . import support

PER_ENTITY = support.pick(120, 1700)  # × 3 entities per connector: 360 bounded, 5,100 full
SETTINGS = settings(
    max_examples=PER_ENTITY, deadline=None, database=None, derandomize=not support.FULL,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
SEEN: Counter[str] = Counter()
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# -- values -------------------------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
junk: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=4,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the documented shape, sometimes junk of any JSON type (or the key is missing: see ``record``)."""
    return st.one_of(*[valid] * 8, junk)


def record(fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with the ``required`` keys present (their values may still be junk) and any other key optional."""
    return st.fixed_dictionaries(
        {k: maybe(fields[k]) for k in required}, optional={k: maybe(v) for k, v in fields.items() if k not in required}
    )


stamp = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC))
BAD_DATES = ["", "0000-00-00 00:00:00", "2024-02-30T10:00:00+03:00", "вчера", "0001-01-01T00:00:00+03:00",
             "0001-01-01", "9999-12-31T23:00:00-05:00"]  # fmt: skip
iso = st.one_of(
    *[stamp.map(lambda d: d.isoformat()), stamp.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S+03:00"))] * 2,
    stamp.map(lambda d: d.strftime("%Y-%m-%d")),
    st.sampled_from(BAD_DATES),
)
id_str = st.one_of(*[st.integers(1, 10**12).map(str)] * 4, st.sampled_from(["", "0", "-1", "12a"]))
phone = st.one_of(st.from_regex(r"\+?[78][ (]?\d{3}[) ]?\d{3}-?\d{2}-?\d{2}", fullmatch=True), text)
email = st.one_of(st.emails().map(str), text)
money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.sampled_from(["12 500,50", "1.234,5", "1,234.50", "руб.", "", "1e400", "-0"]),
)


def multifield(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    item = st.fixed_dictionaries(
        {"ID": id_str, "VALUE_TYPE": st.sampled_from(["WORK", "MOBILE", "HOME"]), "VALUE": maybe(values),
         "TYPE_ID": st.sampled_from(["PHONE", "EMAIL"])}
    )  # fmt: skip
    return st.lists(maybe(item), max_size=3)


# -- Bitrix24 ------------------------------------------------------------------------------------------------

B24_COMMON = {
    "ID": id_str, "ASSIGNED_BY_ID": id_str, "DATE_CREATE": iso, "DATE_MODIFY": iso, "ADDRESS_CITY": text,
    "UTM_SOURCE": text, "UTM_CAMPAIGN": text, "PHONE": multifield(phone), "EMAIL": multifield(email),
    "UF_CRM_INDUSTRY": text,
}  # fmt: skip
b24_contact = record(
    {**B24_COMMON, "NAME": text, "SECOND_NAME": st.none() | text, "LAST_NAME": text, "COMPANY_ID": id_str,
     "TYPE_ID": st.sampled_from(["CLIENT", "PARTNER"]), "SOURCE_ID": st.sampled_from(["WEB", "CALL"])},
    required=("ID", "DATE_CREATE", "DATE_MODIFY"),
)  # fmt: skip
b24_company = record(
    {**B24_COMMON, "TITLE": text, "COMPANY_TYPE": text, "INDUSTRY": text, "EMPLOYEES": text, "REVENUE": money,
     "CURRENCY_ID": st.sampled_from(["RUB", "USD"]), "IS_MY_COMPANY": st.sampled_from(["Y", "N"])},
    required=("ID", "DATE_CREATE", "DATE_MODIFY"),
)  # fmt: skip
int_id = st.integers(0, 10**9)
b24_deal = record(
    {"id": int_id, "title": text, "categoryId": int_id, "stageId": st.sampled_from(["NEW", "WON", "C1:LOSE", "C9:X"]),
     "stageSemanticId": st.sampled_from(["P", "S", "F", ""]), "opportunity": st.one_of(st.floats(0, 1e12), money),
     "currencyId": st.sampled_from(["RUB", "USD", "EUR", "XXX"]), "companyId": int_id, "contactId": int_id,
     "contactIds": st.lists(int_id, max_size=4), "assignedById": int_id, "createdTime": iso, "updatedTime": iso,
     "closedate": iso, "movedTime": iso, "closed": st.sampled_from(["Y", "N"]), "sourceId": text, "typeId": text,
     "utmSource": text},
    required=("id", "stageId", "createdTime", "updatedTime"),
)  # fmt: skip
B24_CTX = b24.MappingContext(
    fields={"industry": "UF_CRM_INDUSTRY"}, base_currency="RUB", rates={"RUB": Decimal(1), "USD": Decimal("90.5")},
    semantics={("0", "NEW"): "open", ("0", "WON"): "won", ("1", "C1:LOSE"): "lost"},
)  # fmt: skip


def check(mapped: Any, connector: str, entity: str) -> None:
    """A record must be sane and storable; a rejection must say why."""
    SEEN[f"fuzz.records.{connector}"] += 1
    if isinstance(mapped, Rejected):
        assert isinstance(mapped.reason, str) and mapped.reason.strip(), mapped
        SEEN[f"fuzz.quarantined.{connector}"] += 1
        return
    assert isinstance(mapped, Customer | Deal), type(mapped)
    assert mapped.remote_id and mapped.remote_id.strip(), mapped
    for moment in (mapped.created_at, mapped.updated_at, getattr(mapped, "closed_at", None)):
        assert moment is None or moment.utcoffset() == UTC.utcoffset(None), moment
    if isinstance(mapped, Deal):
        assert mapped.status in ("open", "won", "lost")
        for amount in (mapped.amount, mapped.amount_base):
            assert amount is None or (isinstance(amount, Decimal) and amount.is_finite()), amount
        row = rows._deal(mapped, 1, datetime.now(UTC))
    else:
        row = rows._customer(mapped, 1, datetime.now(UTC))
    json.dumps({k: row[k] for k in ("attrs", "raw", "phones", "emails") if k in row}, default=str)


@SETTINGS
@given(b24_contact)
def test_bitrix24_contacts(row: dict[str, Any]) -> None:
    check(b24.map_contact(row, B24_CTX), "bitrix24", "contacts")


@SETTINGS
@given(b24_company)
def test_bitrix24_companies(row: dict[str, Any]) -> None:
    check(b24.map_company(row, B24_CTX), "bitrix24", "companies")


@SETTINGS
@given(b24_deal)
def test_bitrix24_deals(item: dict[str, Any]) -> None:
    mapped = b24.map_deal(item, B24_CTX)
    check(mapped, "bitrix24", "deals")
    if isinstance(mapped, Deal):  # the connector also asks whose touches the deal's activities are
        b24.deal_owner(item, "company")


# -- amoCRM -------------------------------------------------------------------------------------------------

unix = st.one_of(
    *[st.integers(0, 2**32)] * 4, st.integers(-10, 2**40), st.floats(0, 4e10), st.sampled_from(["1700000000", "", "x"])
)
cf_value = st.fixed_dictionaries(
    {"value": maybe(st.one_of(text, phone, email, st.integers()))},
    optional={"enum_id": int_id, "enum_code": st.sampled_from(["WORK", "MOB", "PRIV"])},
)
custom_field = st.fixed_dictionaries(
    {"field_id": maybe(int_id), "field_name": maybe(st.sampled_from(["Город", "Телефон", "Email", "Отрасль", "Валюта",
                                                                     "utm_source"]) | text),
     "field_code": maybe(st.sampled_from(["PHONE", "EMAIL", "UTM_SOURCE", "GCLID"]) | st.none()),
     "field_type": st.sampled_from(["multitext", "text", "select", "numeric"]),
     "values": maybe(st.lists(maybe(cf_value), max_size=3))}
)  # fmt: skip
tag = st.fixed_dictionaries({"id": int_id, "name": maybe(text), "color": st.none()})
link = st.fixed_dictionaries({"id": int_id}, optional={"is_main": st.booleans()})
AMO_COMMON = {
    "id": int_id, "name": text, "responsible_user_id": int_id, "group_id": int_id, "created_by": int_id,
    "updated_by": int_id, "created_at": unix, "updated_at": unix, "closest_task_at": st.none() | unix,
    "is_deleted": st.booleans(), "account_id": int_id, "custom_fields_values": st.none() | st.lists(maybe(custom_field),
    max_size=4), "_links": st.just({"self": {"href": "https://example.amocrm.ru/api/v4/x/1"}}),
}  # fmt: skip


def embedded(**lists: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return maybe(
        st.fixed_dictionaries({}, optional={k: maybe(st.lists(maybe(v), max_size=3)) for k, v in lists.items()})
    )


AMO_REQUIRED = ("id", "created_at", "updated_at")
amo_contact = record(
    {**AMO_COMMON, "first_name": text, "last_name": text, "_embedded": embedded(tags=tag, companies=link)},
    required=AMO_REQUIRED,
)
amo_company = record({**AMO_COMMON, "_embedded": embedded(tags=tag, contacts=link)}, required=AMO_REQUIRED)
amo_lead = record(
    {**AMO_COMMON, "price": st.one_of(st.integers(-1, 10**12), st.floats(0, 1e12), money),
     "status_id": st.sampled_from([142, 143, 1001, 0]), "pipeline_id": int_id, "loss_reason_id": st.none() | int_id,
     "closed_at": st.none() | unix, "score": st.none(), "source_id": st.none() | int_id,
     "_embedded": embedded(tags=tag, companies=link, contacts=link)},
    required=(*AMO_REQUIRED, "status_id"),
)  # fmt: skip
AMO_OPTS = MappingOptions(currency="RUB", fields={"industry": "Отрасль"})


def amo_check(fn: Any, raw: dict[str, Any], entity: str) -> None:
    """The connector's own wrapping: RecordRejected → a quarantined ``Rejected``."""
    try:
        mapped: Any = fn(raw)
    except RecordRejected as exc:
        mapped = Rejected(entity, str(raw.get("id")), exc.reason, raw)
    check(mapped, "amocrm", entity)


@SETTINGS
@given(amo_contact)
def test_amocrm_contacts(raw: dict[str, Any]) -> None:
    amo_check(lambda r: map_customer(r, "contact", AMO_OPTS), raw, "contacts")


@SETTINGS
@given(amo_company)
def test_amocrm_companies(raw: dict[str, Any]) -> None:
    amo_check(lambda r: map_customer(r, "company", AMO_OPTS), raw, "companies")


@SETTINGS
@given(amo_lead)
def test_amocrm_leads(raw: dict[str, Any]) -> None:
    amo_check(lambda r: map_deal(r, AMO_OPTS), raw, "deals")


def test_zz_fuzz_figures() -> None:
    """Runs after the property tests above (pytest keeps file order): records what they fed the mappers."""
    for name, value in SEEN.items():
        support.record(name, value)
    for connector in ("bitrix24", "amocrm"):
        fed = SEEN[f"fuzz.records.{connector}"]
        assert fed == 0 or fed >= 3 * PER_ENTITY * 0.9, SEEN  # 0: deselected with -k
