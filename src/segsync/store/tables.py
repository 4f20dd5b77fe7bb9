"""The normalized model (see docs/architecture.md). SQLAlchemy Core: bulk work needs no ORM."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from segsync.store.types import JsonDoc, Money, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _source_fk() -> Column:
    return Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False)


sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("base_currency", String(8)),
    Column("state", String(16), nullable=False, server_default="active"),  # active | stopped
    Column("stop_reason", Text),
    Column("meta", JsonDoc),  # account facts learned from the CRM (portal offset, account id, ...)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("data", JsonDoc, nullable=False),  # access/refresh token, expiry, endpoint
    Column("version", Integer, nullable=False, server_default="0"),
    Column("updated_at", UTCDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    _source_fk(),
    Column("remote_id", String(64), nullable=False),
    Column("name", Text),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("raw", JsonDoc),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    UniqueConstraint("source_id", "remote_id"),
)

stages = Table(
    "stages",
    metadata,
    _source_fk(),
    Column("pipeline_id", String(64), nullable=False),
    Column("stage_id", String(64), nullable=False),
    Column("semantic", String(8), nullable=False),  # open | won | lost
    Column("name", Text),
    Column("pipeline_name", Text),
    Column("sort", Integer, nullable=False, server_default="0"),
    Column("raw", JsonDoc),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    UniqueConstraint("source_id", "pipeline_id", "stage_id"),
)

currencies = Table(
    "currencies",
    metadata,
    _source_fk(),
    Column("code", String(8), nullable=False),
    Column("rate", Float, nullable=False),  # units of base currency per unit
    Column("is_base", Boolean, nullable=False, server_default="0"),
    Column("raw", JsonDoc),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    UniqueConstraint("source_id", "code"),
)

customers = Table(
    "customers",
    metadata,
    _source_fk(),
    Column("kind", String(8), nullable=False),  # contact | company
    Column("remote_id", String(64), nullable=False),
    Column("name", Text),
    Column("responsible_id", String(64)),
    Column("company_id", String(64)),
    Column("phones", JsonDoc),
    Column("emails", JsonDoc),
    Column("attrs", JsonDoc),
    Column("raw", JsonDoc),
    Column("created_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("deleted_at", UTCDateTime),
    Column("synced_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "kind", "remote_id"),
    Index(None, "source_id", "updated_at"),
)

deals = Table(
    "deals",
    metadata,
    _source_fk(),
    Column("remote_id", String(64), nullable=False),
    Column("title", Text),
    Column("status", String(8), nullable=False),  # open | won | lost
    Column("pipeline_id", String(64)),
    Column("stage_id", String(64)),
    Column("company_id", String(64)),
    Column("contact_id", String(64)),  # primary contact
    Column("contact_ids", JsonDoc),
    Column("amount", Money),
    Column("currency", String(8)),
    Column("amount_base", Money),
    Column("responsible_id", String(64)),
    Column("attrs", JsonDoc),
    Column("raw", JsonDoc),
    Column("created_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("deleted_at", UTCDateTime),
    Column("synced_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "remote_id"),
    Index(None, "source_id", "status", "closed_at"),
)

touches = Table(
    "touches",
    metadata,
    _source_fk(),
    Column("remote_id", String(64), nullable=False),
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("completed", Boolean, nullable=False, server_default="1"),
    Column("raw", JsonDoc),
    Column("synced_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    UniqueConstraint("source_id", "remote_id"),
    Index(None, "source_id", "customer_kind", "customer_id", "at"),
)

cursors = Table(
    "cursors",
    metadata,
    _source_fk(),
    Column("stream", String(32), nullable=False),  # entity name, or e.g. "events"
    Column("state", JsonDoc, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "stream"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _source_fk(),
    Column("entity", String(32), nullable=False),
    Column("remote_id", String(64)),
    Column("reason", Text, nullable=False),
    Column("raw", JsonDoc),
    Column("run_id", Id),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index(None, "source_id", "entity", "remote_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE")),
    Column("step", String(16), nullable=False),  # pull | reconcile | compute | plan | push
    Column("status", String(16), nullable=False),  # running | ok | failed | interrupted
    Column("worker", String(128)),  # host:pid of the replica that ran it
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("counts", JsonDoc),
    Column("error", Text),
    Index(None, "source_id", "step", "started_at"),
)

segment_state = Table(
    "segment_state",
    metadata,
    _source_fk(),
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("labels", JsonDoc, nullable=False),  # label key → value
    Column("features", JsonDoc, nullable=False),
    Column("run_id", Id),
    Column("as_of", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "customer_kind", "customer_id"),
)

segment_history = Table(
    "segment_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _source_fk(),
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("label", String(32), nullable=False),
    Column("from_value", String(64)),
    Column("to_value", String(64)),
    Column("run_id", Id),
    Column("as_of", UTCDateTime, nullable=False),
    Index(None, "source_id", "customer_kind", "customer_id", "label"),
    Index(None, "source_id", "as_of"),
)

model_fits = Table(
    "model_fits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _source_fk(),
    Column("run_id", Id),
    Column("model", String(16), nullable=False),  # bgnbd | mbgnbd | gamma_gamma
    Column("status", String(16), nullable=False),  # fitted | not_fitted
    Column("params", JsonDoc),
    Column("log_likelihood", Float),
    Column("detail", Text),
    Column("as_of", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _source_fk(),
    Column("key", String(255), nullable=False),  # idempotency key
    Column("op", String(16), nullable=False),  # labels | task | complete
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("rule", String(64)),
    Column("state", String(16), nullable=False),  # planned | pending | done | failed | parked | skipped
    Column("payload", JsonDoc),  # what is (to be) written: labels before/after, task text, due
    Column("reason", Text),  # why: the audit trail managers and admins read
    Column("remote_id", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("not_before", UTCDateTime),  # queued for a later day (daily cap) or backoff
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "key"),
    Index(None, "source_id", "state"),
    Index(None, "source_id", "customer_kind", "customer_id"),
)

labels_written = Table(
    "labels_written",
    metadata,
    _source_fk(),
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("labels", JsonDoc, nullable=False),  # what the CRM holds now, as far as segsync wrote it
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source_id", "customer_kind", "customer_id"),
)

action_episodes = Table(
    "action_episodes",
    metadata,
    _source_fk(),
    Column("rule", String(64), nullable=False),  # action name
    Column("customer_kind", String(8), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),  # when the action's condition started to hold
    UniqueConstraint("source_id", "rule", "customer_kind", "customer_id"),
)
