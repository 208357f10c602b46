"""mail alerts: the rep's language (crm_reps.locale) and the facts an alert is rendered from

Revision ID: 2101_rep_locale_alert_details
Revises: 1601_receipt_disposition_source (written on 0200; chained onto the head of main when rebased)
Create Date: 2026-11-24 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2101_rep_locale_alert_details"
down_revision: str | Sequence[str] | None = "1601_receipt_disposition_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("crm_reps") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
    with op.batch_alter_table("hub_alert_outbox") as batch:
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_alert_outbox") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("crm_reps") as batch:
        batch.drop_column("locale")
