"""action episodes: since when an action's where/cadence condition holds per customer

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import segsync.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_episodes",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("customer_kind", sa.String(length=8), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", segsync.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_action_episodes_source_id_sources"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint(
            "source_id",
            "rule",
            "customer_kind",
            "customer_id",
            name=op.f("uq_action_episodes_source_id_rule_customer_kind_customer_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("action_episodes")
