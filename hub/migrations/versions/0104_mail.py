"""mail: read receipts (with the uncorrelated queue), tracking-pixel tokens and pixel hits

Revision ID: 0104
Revises: 0001
Create Date: 2026-11-22 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0104"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("mail",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_mail_receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_system", sa.String(length=50), nullable=False),
        sa.Column("source_ref", sa.String(length=500), nullable=False),
        sa.Column("location", sa.String(length=300), nullable=True),
        sa.Column("variant", sa.String(length=20), nullable=False),
        sa.Column("disposition", sa.String(length=20), nullable=False),
        sa.Column("reader", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("original_message_id", sa.String(length=500), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sent_message_id", sa.String(length=500), nullable=True),
        sa.Column("match_method", sa.String(length=30), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("correlated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_mail_receipts")),
        sa.UniqueConstraint(
            "source_system", "source_ref", name=op.f("uq_hub_mail_receipts_source_system_source_ref")
        ),
    )
    with op.batch_alter_table("hub_mail_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_mail_receipts_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hub_mail_receipts_sent_message_id"), ["sent_message_id"], unique=False
        )
    op.create_table(
        "hub_mail_tracking_tokens",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_hub_mail_tracking_tokens")),
        sa.UniqueConstraint("message_id", name=op.f("uq_hub_mail_tracking_tokens_message_id")),
    )
    op.create_table(
        "hub_mail_pixel_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("machine_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_mail_pixel_hits")),
    )
    with op.batch_alter_table("hub_mail_pixel_hits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_mail_pixel_hits_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hub_mail_pixel_hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_mail_pixel_hits_message_id"))
    op.drop_table("hub_mail_pixel_hits")
    op.drop_table("hub_mail_tracking_tokens")
    with op.batch_alter_table("hub_mail_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_mail_receipts_sent_message_id"))
        batch_op.drop_index(batch_op.f("ix_hub_mail_receipts_status"))
    op.drop_table("hub_mail_receipts")
