"""mail: what a receipt's disposition was read from (its report part, or its subject when the
report is missing or malformed), so that a subject-only "opened" counts less surely.

Revision ID: 1601_receipt_disposition_source
Revises: 1401 (written on 0200; chained onto the head main had when rebased)
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1601_receipt_disposition_source"
down_revision: str | Sequence[str] | None = "1401"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hub_mail_receipts") as batch:
        batch.add_column(
            sa.Column("disposition_source", sa.String(length=10), nullable=False, server_default="report")
        )


def downgrade() -> None:
    with op.batch_alter_table("hub_mail_receipts") as batch:
        batch.drop_column("disposition_source")
