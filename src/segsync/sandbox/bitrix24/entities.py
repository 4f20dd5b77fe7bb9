"""Bitrix24's view of a :class:`World`: field lists of contacts, companies, deals and activities.

Field names, value kinds and constants follow the documented ``crm.*.get`` samples
(docs: api-reference/crm/{contacts,companies,deals}/crm-*-get.md, universal/object-fields.md).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from segsync.sandbox.bitrix24.clock import NULL, Clock
from segsync.sandbox.bitrix24.table import EntityTable, Field
from segsync.sandbox.world import World

SEMANTIC = {"open": "P", "won": "S", "lost": "F"}
ACTIVITY_TYPES = {  # kind → (TYPE_ID, PROVIDER_ID, PROVIDER_TYPE_ID)
    "meeting": (1, "CRM_MEETING", "MEETING"),
    "call": (2, "VOXIMPLANT_CALL", "CALL"),
    "email": (4, "CRM_EMAIL", "EMAIL"),
    "todo": (6, "CRM_TODO", "TODO"),
}
OWNER_TYPE = {"lead": 1, "deal": 2, "contact": 3, "company": 4}


def _f(name: str, camel: str, kind: str, column: str | None = None, const: object = None) -> Field:
    return Field(name, camel, kind, column if column is not None else (None if kind == "const" else name), const)


_UTM = [_f(n, c, "str") for n, c in (
    ("UTM_SOURCE", "utmSource"), ("UTM_MEDIUM", "utmMedium"), ("UTM_CAMPAIGN", "utmCampaign"),
    ("UTM_CONTENT", "utmContent"), ("UTM_TERM", "utmTerm"),
)]  # fmt: skip

CONTACT_FIELDS = [
    _f("ID", "id", "id"),
    _f("HONORIFIC", "honorific", "const", const=None),
    _f("NAME", "name", "str"),
    _f("SECOND_NAME", "secondName", "const", const=None),
    _f("LAST_NAME", "lastName", "str"),
    _f("PHOTO", "photo", "const", const=None),
    _f("BIRTHDATE", "birthdate", "const", const=""),
    _f("TYPE_ID", "typeId", "const", const="CLIENT"),
    _f("SOURCE_ID", "sourceId", "str"),
    _f("SOURCE_DESCRIPTION", "sourceDescription", "const", const=None),
    _f("POST", "post", "const", const=None),
    _f("COMMENTS", "comments", "str"),
    _f("OPENED", "opened", "const", const="Y"),
    _f("EXPORT", "export", "const", const="Y"),
    _f("ASSIGNED_BY_ID", "assignedById", "int"),
    _f("CREATED_BY_ID", "createdBy", "int"),
    _f("MODIFY_BY_ID", "updatedBy", "int"),
    _f("DATE_CREATE", "createdTime", "date"),
    _f("DATE_MODIFY", "updatedTime", "date"),
    _f("COMPANY_ID", "companyId", "id"),
    _f("LEAD_ID", "leadId", "const", const=None),
    _f("ORIGINATOR_ID", "originatorId", "const", const=None),
    _f("ORIGIN_ID", "originId", "const", const=None),
    _f("ORIGIN_VERSION", "originVersion", "const", const=None),
    _f("FACE_ID", "faceId", "const", const=None),
    _f("HAS_PHONE", "hasPhone", "yn"),
    _f("HAS_EMAIL", "hasEmail", "yn"),
    _f("HAS_IMOL", "hasImol", "const", const="N"),
    _f("LAST_ACTIVITY_TIME", "lastActivityTime", "date"),
    _f("LAST_ACTIVITY_BY", "lastActivityBy", "int"),
    _f("ADDRESS", "address", "const", const=None),
    _f("ADDRESS_CITY", "addressCity", "str"),
    _f("ADDRESS_COUNTRY", "addressCountry", "str"),
    *_UTM,
]

COMPANY_FIELDS = [
    _f("ID", "id", "id"),
    _f("TITLE", "title", "str"),
    _f("COMPANY_TYPE", "typeId", "const", const="CUSTOMER"),
    _f("LOGO", "logo", "const", const=None),
    _f("LEAD_ID", "leadId", "const", const=None),
    _f("HAS_PHONE", "hasPhone", "yn"),
    _f("HAS_EMAIL", "hasEmail", "yn"),
    _f("HAS_IMOL", "hasImol", "const", const="N"),
    _f("ASSIGNED_BY_ID", "assignedById", "int"),
    _f("CREATED_BY_ID", "createdBy", "int"),
    _f("MODIFY_BY_ID", "updatedBy", "int"),
    _f("BANKING_DETAILS", "bankingDetails", "const", const=None),
    _f("INDUSTRY", "industry", "str"),
    _f("REVENUE", "revenue", "const", const="0.00"),
    _f("CURRENCY_ID", "currencyId", "const", const="RUB"),
    _f("EMPLOYEES", "employees", "const", const="EMPLOYEES_1"),
    _f("COMMENTS", "comments", "str"),
    _f("DATE_CREATE", "createdTime", "date"),
    _f("DATE_MODIFY", "updatedTime", "date"),
    _f("OPENED", "opened", "const", const="Y"),
    _f("IS_MY_COMPANY", "isMyCompany", "const", const="N"),
    _f("SOURCE_ID", "sourceId", "str"),
    _f("ORIGINATOR_ID", "originatorId", "const", const=None),
    _f("ORIGIN_ID", "originId", "const", const=None),
    _f("ORIGIN_VERSION", "originVersion", "const", const=None),
    _f("LAST_ACTIVITY_TIME", "lastActivityTime", "date"),
    _f("LAST_ACTIVITY_BY", "lastActivityBy", "int"),
    _f("ADDRESS", "address", "const", const=None),
    _f("ADDRESS_CITY", "addressCity", "str"),
    *_UTM,
]

DEAL_FIELDS = [
    _f("ID", "id", "id"),
    _f("TITLE", "title", "str"),
    _f("TYPE_ID", "typeId", "const", const="SALE"),
    _f("STAGE_ID", "stageId", "str"),
    _f("PROBABILITY", "probability", "const", const=None),
    _f("CURRENCY_ID", "currencyId", "str"),
    _f("OPPORTUNITY", "opportunity", "money"),
    _f("IS_MANUAL_OPPORTUNITY", "isManualOpportunity", "const", const="Y"),
    _f("TAX_VALUE", "taxValue", "const", const="0.00"),
    _f("LEAD_ID", "leadId", "const", const=None),
    _f("COMPANY_ID", "companyId", "int"),  # "0" when the deal has no company
    _f("CONTACT_ID", "contactId", "id"),  # deprecated: the first contact only
    _f("QUOTE_ID", "quoteId", "const", const=None),
    _f("BEGINDATE", "begindate", "day"),
    _f("CLOSEDATE", "closedate", "day"),
    _f("ASSIGNED_BY_ID", "assignedById", "int"),
    _f("CREATED_BY_ID", "createdBy", "int"),
    _f("MODIFY_BY_ID", "updatedBy", "int"),
    _f("DATE_CREATE", "createdTime", "date"),
    _f("DATE_MODIFY", "updatedTime", "date"),
    _f("OPENED", "opened", "const", const="Y"),
    _f("CLOSED", "closed", "yn"),
    _f("COMMENTS", "comments", "str"),
    _f("ADDITIONAL_INFO", "additionalInfo", "const", const=None),
    _f("LOCATION_ID", "locationId", "const", const=None),
    _f("CATEGORY_ID", "categoryId", "int"),
    _f("STAGE_SEMANTIC_ID", "stageSemanticId", "str"),
    _f("IS_NEW", "isNew", "const", const="N"),
    _f("IS_RECURRING", "isRecurring", "const", const="N"),
    _f("IS_RETURN_CUSTOMER", "isReturnCustomer", "yn"),
    _f("IS_REPEATED_APPROACH", "isRepeatedApproach", "const", const="N"),
    _f("SOURCE_ID", "sourceId", "str"),
    _f("SOURCE_DESCRIPTION", "sourceDescription", "const", const=None),
    _f("ORIGINATOR_ID", "originatorId", "const", const=None),
    _f("ORIGIN_ID", "originId", "const", const=None),
    _f("MOVED_BY_ID", "movedBy", "int"),
    _f("MOVED_TIME", "movedTime", "date"),
    _f("LAST_ACTIVITY_TIME", "lastActivityTime", "date"),
    _f("LAST_ACTIVITY_BY", "lastActivityBy", "int"),
    *_UTM,
]

ACTIVITY_FIELDS = [
    _f("ID", "id", "id"),
    _f("OWNER_ID", "ownerId", "int"),
    _f("OWNER_TYPE_ID", "ownerTypeId", "int"),
    _f("TYPE_ID", "typeId", "int"),
    _f("PROVIDER_ID", "providerId", "str"),
    _f("PROVIDER_TYPE_ID", "providerTypeId", "str"),
    _f("PROVIDER_GROUP_ID", "providerGroupId", "const", const=None),
    _f("ASSOCIATED_ENTITY_ID", "associatedEntityId", "const", const=None),
    _f("SUBJECT", "subject", "str"),
    _f("CREATED", "created", "date"),
    _f("LAST_UPDATED", "lastUpdated", "date"),
    _f("START_TIME", "startTime", "date"),
    _f("END_TIME", "endTime", "date"),
    _f("DEADLINE", "deadline", "date"),
    _f("COMPLETED", "completed", "yn"),
    _f("STATUS", "status", "int"),
    _f("RESPONSIBLE_ID", "responsibleId", "int"),
    _f("PRIORITY", "priority", "const", const="2"),
    _f("NOTIFY_TYPE", "notifyType", "const", const="0"),
    _f("NOTIFY_VALUE", "notifyValue", "const", const="0"),
    _f("DESCRIPTION", "description", "str"),
    _f("DESCRIPTION_TYPE", "descriptionType", "const", const="1"),
    _f("DIRECTION", "direction", "int"),
    _f("LOCATION", "location", "const", const=""),
    _f("SETTINGS", "settings", "const", const=[]),
    _f("ORIGINATOR_ID", "originatorId", "const", const=None),
    _f("ORIGIN_ID", "originId", "const", const=None),
    _f("AUTHOR_ID", "authorId", "int"),
    _f("EDITOR_ID", "editorId", "int"),
]


def _epoch(s: pl.Series) -> np.ndarray:
    return s.dt.epoch("s").fill_null(NULL).to_numpy().astype(np.int64)


def _ints(s: pl.Series) -> np.ndarray:
    return s.fill_null(NULL).to_numpy().astype(np.int64)


def _strs(s: pl.Series) -> np.ndarray:
    return np.array(s.to_list(), dtype=object)


def _multi(phones: pl.Series, emails: pl.Series, phone_type: str, email_type: str) -> dict[str, np.ndarray]:
    out = {}
    next_id = 1
    for name, series, vtype in (("PHONE", phones, phone_type), ("EMAIL", emails, email_type)):
        arr = np.empty(series.len(), dtype=object)
        for i, values in enumerate(series.to_list()):
            if values:
                arr[i] = [
                    {"ID": str(next_id + j), "VALUE_TYPE": vtype, "VALUE": v, "TYPE_ID": name}
                    for j, v in enumerate(values)
                ]
                next_id += len(values)
        out[name] = arr
    return out


def _last_activity(world: World, kind: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acts = (
        world.activities.filter((pl.col("owner_kind") == kind) & pl.col("completed"))
        .group_by("owner_id")
        .agg(pl.col("at").max(), pl.col("responsible_id").last())
    )
    at = np.full(ids.size, NULL, np.int64)
    by = np.full(ids.size, NULL, np.int64)
    if acts.height:
        pos = np.searchsorted(ids, acts["owner_id"].to_numpy())
        at[pos] = _epoch(acts["at"])
        by[pos] = acts["responsible_id"].to_numpy()
    return at, by


def build_contacts(world: World, clock: Clock) -> EntityTable:
    c = world.contacts.sort("id")
    ids = c["id"].to_numpy().astype(np.int64)
    la_at, la_by = _last_activity(world, "contact", ids)
    created = _epoch(c["created_at"])
    cols = {
        "ID": ids,
        "NAME": _strs(c["first_name"].fill_null(c["name"])),
        "LAST_NAME": _strs(c["last_name"]),
        "SOURCE_ID": _strs(c["source"]),
        "COMMENTS": np.full(ids.size, None, dtype=object),
        "ASSIGNED_BY_ID": _ints(c["responsible_id"]),
        "CREATED_BY_ID": np.ones(ids.size, np.int64),
        "MODIFY_BY_ID": np.ones(ids.size, np.int64),
        "DATE_CREATE": created,
        "DATE_MODIFY": _epoch(c["updated_at"]),
        "COMPANY_ID": _ints(c["company_id"]),
        "HAS_PHONE": (c["phones"].list.len() > 0).to_numpy(),
        "HAS_EMAIL": (c["emails"].list.len() > 0).to_numpy(),
        "LAST_ACTIVITY_TIME": np.where(la_at == NULL, created, la_at),
        "LAST_ACTIVITY_BY": np.where(la_by == NULL, 1, la_by),
        "ADDRESS_CITY": _strs(c["city"]),
        "ADDRESS_COUNTRY": np.full(ids.size, "Россия", dtype=object),
        "UTM_SOURCE": _strs(c["utm_source"]),
        "UTM_MEDIUM": np.where(c["utm_source"].is_null().to_numpy(), None, "CPC").astype(object),
        "UTM_CAMPAIGN": np.full(ids.size, None, dtype=object),
        "UTM_CONTENT": np.full(ids.size, None, dtype=object),
        "UTM_TERM": np.full(ids.size, None, dtype=object),
    }
    # the generator keeps a contact's full name in `name` (empty for dirt); NAME is the first name
    cols["NAME"] = np.where(c["first_name"].is_null().to_numpy(), _strs(c["name"]), cols["NAME"])
    multi = _multi(c["phones"], c["emails"], "MOBILE", "WORK")
    return EntityTable("contact", CONTACT_FIELDS, cols, multi=multi, clock=clock)


def build_companies(world: World, clock: Clock) -> EntityTable:
    c = world.companies.sort("id")
    ids = c["id"].to_numpy().astype(np.int64)
    la_at, la_by = _last_activity(world, "company", ids)
    created = _epoch(c["created_at"])
    cols = {
        "ID": ids,
        "TITLE": _strs(c["title"]),
        "HAS_PHONE": (c["phones"].list.len() > 0).to_numpy(),
        "HAS_EMAIL": (c["emails"].list.len() > 0).to_numpy(),
        "ASSIGNED_BY_ID": _ints(c["responsible_id"]),
        "CREATED_BY_ID": np.ones(ids.size, np.int64),
        "MODIFY_BY_ID": np.ones(ids.size, np.int64),
        "INDUSTRY": _strs(c["industry"]),
        "COMMENTS": np.full(ids.size, None, dtype=object),
        "DATE_CREATE": created,
        "DATE_MODIFY": _epoch(c["updated_at"]),
        "SOURCE_ID": _strs(c["source"]),
        "LAST_ACTIVITY_TIME": np.where(la_at == NULL, created, la_at),
        "LAST_ACTIVITY_BY": np.where(la_by == NULL, 1, la_by),
        "ADDRESS_CITY": _strs(c["city"]),
        **{f.name: np.full(ids.size, None, dtype=object) for f in _UTM},
    }
    multi = _multi(c["phones"], c["emails"], "WORK", "WORK")
    return EntityTable("company", COMPANY_FIELDS, cols, multi=multi, clock=clock)


def stage_id(pipeline_id: int, code: str) -> str:
    """Bitrix24 stage ids carry the category prefix outside the main pipeline: ``C1:NEW``."""
    return code if pipeline_id == 0 else f"C{pipeline_id}:{code}"


def build_deals(world: World, clock: Clock, *, dirty_amounts: bool) -> tuple[EntityTable, np.ndarray, np.ndarray]:
    """The deals table plus deal→contacts links in CSR form (offsets, contact ids)."""
    d = world.deals.sort("id")
    ids = d["id"].to_numpy().astype(np.int64)
    semantic = world.stages.select(
        "pipeline_id", pl.col("code").alias("stage_code"), pl.col("semantic").replace_strict(SEMANTIC).alias("sem")
    )
    d = d.join(semantic, on=["pipeline_id", "stage_code"], how="left", maintain_order="left")
    stage = [stage_id(p, s) for p, s in zip(d["pipeline_id"].to_list(), d["stage_code"].to_list(), strict=True)]
    created = _epoch(d["created_at"])
    closed = _epoch(d["closed_at"])
    updated = _epoch(d["updated_at"])
    is_closed = d["status"].is_in(["won", "lost"]).to_numpy()
    text = np.where(
        d["dirt"].eq("amount_text").fill_null(False).to_numpy() & dirty_amounts,
        _strs(d["amount_text"]),
        _strs(_money(d["amount"])),
    )
    first_contact = d["contact_ids"].list.first()
    # a customer's won deal after its first one is a "return customer" deal
    n_prev = (
        d.with_row_index("_i")
        .with_columns(pl.coalesce("company_id", first_contact).alias("_cust"))
        .with_columns(pl.col("_i").rank("ordinal").over("_cust").alias("_k"))["_k"]
        .to_numpy()
    )
    cols = {
        "ID": ids,
        "TITLE": _strs(d["title"]),
        "STAGE_ID": np.array(stage, dtype=object),
        "CURRENCY_ID": _strs(d["currency"]),
        "OPPORTUNITY": text,
        "OPPORTUNITY#num": d["amount"].to_numpy().astype(float),
        "COMPANY_ID": d["company_id"].fill_null(0).to_numpy().astype(np.int64),
        "CONTACT_ID": _ints(first_contact),
        "BEGINDATE": created,
        "CLOSEDATE": np.where(is_closed, closed, created + 7 * 86_400),
        "ASSIGNED_BY_ID": _ints(d["responsible_id"]),
        "CREATED_BY_ID": _ints(d["responsible_id"]),
        "MODIFY_BY_ID": _ints(d["responsible_id"]),
        "DATE_CREATE": created,
        "DATE_MODIFY": updated,
        "CLOSED": is_closed,
        "COMMENTS": np.full(ids.size, None, dtype=object),
        "CATEGORY_ID": d["pipeline_id"].to_numpy().astype(np.int64),
        "STAGE_SEMANTIC_ID": _strs(d["sem"]),
        "IS_RETURN_CUSTOMER": n_prev > 1,
        "SOURCE_ID": _strs(d["source"]),
        "MOVED_BY_ID": _ints(d["responsible_id"]),
        "MOVED_TIME": np.where(is_closed, closed, created),
        "LAST_ACTIVITY_TIME": np.where(is_closed, closed, created),
        "LAST_ACTIVITY_BY": _ints(d["responsible_id"]),
        **{f.name: np.full(ids.size, None, dtype=object) for f in _UTM},
    }
    lens = d["contact_ids"].list.len().to_numpy().astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    flat = d["contact_ids"].explode().drop_nulls().to_numpy().astype(np.int64)
    return EntityTable("deal", DEAL_FIELDS, cols, clock=clock), offsets, flat


def _money(s: pl.Series) -> pl.Series:
    cents = (s * 100).round(0).cast(pl.Int64)
    return (cents // 100).cast(pl.String) + "." + (cents % 100).cast(pl.String).str.zfill(2)


def build_activities(world: World, clock: Clock) -> EntityTable:
    a = world.activities.sort("id")
    ids = a["id"].to_numpy().astype(np.int64)
    kinds = a["kind"].to_list()
    at = _epoch(a["at"])
    completed = a["completed"].to_numpy()
    cols = {
        "ID": ids,
        "OWNER_ID": a["owner_id"].to_numpy().astype(np.int64),
        "OWNER_TYPE_ID": a["owner_kind"].replace_strict(OWNER_TYPE, return_dtype=pl.Int64).to_numpy(),
        "TYPE_ID": np.array([ACTIVITY_TYPES[k][0] for k in kinds], np.int64),
        "PROVIDER_ID": np.array([ACTIVITY_TYPES[k][1] for k in kinds], dtype=object),
        "PROVIDER_TYPE_ID": np.array([ACTIVITY_TYPES[k][2] for k in kinds], dtype=object),
        "SUBJECT": _strs(a["subject"]),
        "CREATED": at,
        "LAST_UPDATED": at,
        "START_TIME": at,
        "END_TIME": at + 900,
        "DEADLINE": at,
        "COMPLETED": completed,
        "STATUS": np.where(completed, 2, 1).astype(np.int64),
        "RESPONSIBLE_ID": a["responsible_id"].to_numpy().astype(np.int64),
        "DESCRIPTION": np.full(ids.size, "", dtype=object),
        "DIRECTION": np.where(np.array([k == "call" for k in kinds]), 2, 0).astype(np.int64),
        "AUTHOR_ID": a["responsible_id"].to_numpy().astype(np.int64),
        "EDITOR_ID": a["responsible_id"].to_numpy().astype(np.int64),
    }
    return EntityTable("activity", ACTIVITY_FIELDS, cols, clock=clock)
