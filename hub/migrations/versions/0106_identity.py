"""identity: lead touches, the reason of a contact's owner and of a moved deal

Revision ID: 0106
Revises: 0001
Create Date: 2026-11-22 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0106"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("identity",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crm_leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("touches", sa.JSON(), nullable=True))
    with op.batch_alter_table("crm_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_reason", sa.String(length=300), nullable=True))
    with op.batch_alter_table("crm_deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignment_reason", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crm_deals", schema=None) as batch_op:
        batch_op.drop_column("assignment_reason")
    with op.batch_alter_table("crm_contacts", schema=None) as batch_op:
        batch_op.drop_column("owner_reason")
    with op.batch_alter_table("crm_leads", schema=None) as batch_op:
        batch_op.drop_column("touches")
