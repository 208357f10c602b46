"""accounting: receivables per CRM contact as of a date

Revision ID: 0105a
Revises: 0105
Create Date: 2026-11-22 14:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0105a"
down_revision: str | Sequence[str] | None = "0105"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    money = sa.Numeric(precision=18, scale=2)
    op.create_table(
        "crm_contact_receivables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("invoices", sa.Integer(), nullable=False),
        sa.Column("invoiced", money, nullable=False),
        sa.Column("outstanding", money, nullable=False),
        sa.Column("current", money, nullable=False),
        sa.Column("days_1_30", money, nullable=False),
        sa.Column("days_31_60", money, nullable=False),
        sa.Column("days_61_90", money, nullable=False),
        sa.Column("days_90_plus", money, nullable=False),
        sa.Column("max_days_overdue", sa.Integer(), nullable=False),
        sa.Column("aging_bucket", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["crm_contacts.id"],
            name=op.f("fk_crm_contact_receivables_contact_id_crm_contacts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_contact_receivables")),
        sa.UniqueConstraint("contact_id", "as_of", name=op.f("uq_crm_contact_receivables_contact_id_as_of")),
    )
    with op.batch_alter_table("crm_contact_receivables", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crm_contact_receivables_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_crm_contact_receivables_as_of"), ["as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crm_contact_receivables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_contact_receivables_as_of"))
        batch_op.drop_index(batch_op.f("ix_crm_contact_receivables_contact_id"))
    op.drop_table("crm_contact_receivables")
