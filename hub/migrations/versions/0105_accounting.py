"""accounting: counterparties from 1C and the unmatched-payments queue

Revision ID: 0105
Revises: 0001
Create Date: 2026-11-22 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0105"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("accounting",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_counterparties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_system", sa.String(length=50), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("full_name", sa.String(length=1000), nullable=True),
        sa.Column("tax_id", sa.String(length=20), nullable=True),
        sa.Column("kpp", sa.String(length=20), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["crm_contacts.id"], name=op.f("fk_hub_counterparties_contact_id_crm_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_counterparties")),
        sa.UniqueConstraint(
            "source_system", "source_ref", name=op.f("uq_hub_counterparties_source_system_source_ref")
        ),
    )
    with op.batch_alter_table("hub_counterparties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_counterparties_tax_id"), ["tax_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hub_counterparties_contact_id"), ["contact_id"], unique=False)
    op.create_table(
        "hub_unmatched_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["crm_payments.id"],
            name=op.f("fk_hub_unmatched_payments_payment_id_crm_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_unmatched_payments")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_hub_unmatched_payments_payment_id")),
    )


def downgrade() -> None:
    op.drop_table("hub_unmatched_payments")
    with op.batch_alter_table("hub_counterparties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_counterparties_contact_id"))
        batch_op.drop_index(batch_op.f("ix_hub_counterparties_tax_id"))
    op.drop_table("hub_counterparties")
