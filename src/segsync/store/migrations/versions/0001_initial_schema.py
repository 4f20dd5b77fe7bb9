"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 23:48:19.584169
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import segsync.store.types
from segsync.store.types import JsonDoc

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("base_currency", sa.String(length=8), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("meta", JsonDoc, nullable=True),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_table(
        "currencies",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("is_base", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_currencies_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "code", name=op.f("uq_currencies_source_id_code")),
    )
    op.create_table(
        "cursors",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("state", JsonDoc, nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_cursors_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "stream", name=op.f("uq_cursors_source_id_stream")),
    )
    op.create_table(
        "customers",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("phones", JsonDoc, nullable=True),
        sa.Column("emails", JsonDoc, nullable=True),
        sa.Column("attrs", JsonDoc, nullable=True),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_customers_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "kind", "remote_id", name=op.f("uq_customers_source_id_kind_remote_id")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customers_source_id_updated_at"), ["source_id", "updated_at"], unique=False
        )

    op.create_table(
        "deals",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=True),
        sa.Column("stage_id", sa.String(length=64), nullable=True),
        sa.Column("company_id", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("contact_ids", JsonDoc, nullable=True),
        sa.Column("amount", segsync.store.types.Money(precision=20, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("amount_base", segsync.store.types.Money(precision=20, scale=2), nullable=True),
        sa.Column("responsible_id", sa.String(length=64), nullable=True),
        sa.Column("attrs", JsonDoc, nullable=True),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_deals_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "remote_id", name=op.f("uq_deals_source_id_remote_id")),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deals_source_id_status_closed_at"),
            ["source_id", "status", "closed_at"],
            unique=False,
        )

    op.create_table(
        "labels_written",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("labels", JsonDoc, nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_labels_written_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "source_id",
            "customer_kind",
            "customer_id",
            name=op.f("uq_labels_written_source_id_customer_kind_customer_id"),
        ),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("payload", JsonDoc, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("not_before", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_ledger_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger")),
        sa.UniqueConstraint("source_id", "key", name=op.f("uq_ledger_source_id_key")),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_source_id_customer_kind_customer_id"),
            ["source_id", "customer_kind", "customer_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_ledger_source_id_state"), ["source_id", "state"], unique=False)

    op.create_table(
        "model_fits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", JsonDoc, nullable=True),
        sa.Column("log_likelihood", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("as_of", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_model_fits_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_fits")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_quarantine_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_source_id_entity_remote_id"),
            ["source_id", "entity", "remote_id"],
            unique=False,
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("started_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("counts", JsonDoc, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_runs_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runs_source_id_step_started_at"), ["source_id", "step", "started_at"], unique=False
        )

    op.create_table(
        "segment_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("from_value", sa.String(length=64), nullable=True),
        sa.Column("to_value", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("as_of", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_segment_history_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_history")),
    )
    with op.batch_alter_table("segment_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segment_history_source_id_as_of"), ["source_id", "as_of"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_segment_history_source_id_customer_kind_customer_id_label"),
            ["source_id", "customer_kind", "customer_id", "label"],
            unique=False,
        )

    op.create_table(
        "segment_state",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("labels", JsonDoc, nullable=False),
        sa.Column("features", JsonDoc, nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("as_of", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_segment_state_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "source_id",
            "customer_kind",
            "customer_id",
            name=op.f("uq_segment_state_source_id_customer_kind_customer_id"),
        ),
    )
    op.create_table(
        "stages",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("stage_id", sa.String(length=64), nullable=False),
        sa.Column("semantic", sa.String(length=8), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("pipeline_name", sa.Text(), nullable=True),
        sa.Column("sort", sa.Integer(), server_default="0", nullable=False),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_stages_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "source_id", "pipeline_id", "stage_id", name=op.f("uq_stages_source_id_pipeline_id_stage_id")
        ),
    )
    op.create_table(
        "tokens",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("data", JsonDoc, nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_tokens_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_tokens")),
    )
    op.create_table(
        "touches",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_touches_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "remote_id", name=op.f("uq_touches_source_id_remote_id")),
    )
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_touches_source_id_customer_kind_customer_id_at"),
            ["source_id", "customer_kind", "customer_id", "at"],
            unique=False,
        )

    op.create_table(
        "users",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("raw", JsonDoc, nullable=True),
        sa.Column("synced_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", segsync.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_users_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("source_id", "remote_id", name=op.f("uq_users_source_id_remote_id")),
    )


def downgrade() -> None:

    op.drop_table("users")
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touches_source_id_customer_kind_customer_id_at"))

    op.drop_table("touches")
    op.drop_table("tokens")
    op.drop_table("stages")
    op.drop_table("segment_state")
    with op.batch_alter_table("segment_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_history_source_id_customer_kind_customer_id_label"))
        batch_op.drop_index(batch_op.f("ix_segment_history_source_id_as_of"))

    op.drop_table("segment_history")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_source_id_step_started_at"))

    op.drop_table("runs")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_source_id_entity_remote_id"))

    op.drop_table("quarantine")
    op.drop_table("model_fits")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_source_id_state"))
        batch_op.drop_index(batch_op.f("ix_ledger_source_id_customer_kind_customer_id"))

    op.drop_table("ledger")
    op.drop_table("labels_written")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deals_source_id_status_closed_at"))

    op.drop_table("deals")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_source_id_updated_at"))

    op.drop_table("customers")
    op.drop_table("cursors")
    op.drop_table("currencies")
    op.drop_table("sources")
