"""analytics: touches, channel report, funnel report and summary

Revision ID: 0107
Revises: 0001
Create Date: 2026-11-22 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0107"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("analytics",)
depends_on: str | Sequence[str] | None = None


def _period_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "hub_touches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_system", sa.String(length=50), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["crm_contacts.id"], name=op.f("fk_hub_touches_contact_id_crm_contacts")
        ),
        sa.ForeignKeyConstraint(["lead_id"], ["crm_leads.id"], name=op.f("fk_hub_touches_lead_id_crm_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_touches")),
        sa.UniqueConstraint(
            "source_system", "source_ref", name=op.f("uq_hub_touches_source_system_source_ref")
        ),
    )
    with op.batch_alter_table("hub_touches", schema=None) as batch_op:
        batch_op.create_index("ix_hub_touches_contact_time", ["contact_id", "occurred_at"], unique=False)

    op.create_table(
        "hub_channel_report",
        *_period_columns(),
        sa.Column("model", sa.String(length=30), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=False),
        sa.Column("leads", sa.Double(), nullable=False),
        sa.Column("deals", sa.Double(), nullable=False),
        sa.Column("won", sa.Double(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("cost", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("lead_to_deal", sa.Double(), nullable=True),
        sa.Column("deal_to_won", sa.Double(), nullable=True),
        sa.Column("lead_to_won", sa.Double(), nullable=True),
        sa.Column("average_check", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("cost_per_lead", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("cost_per_sale", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("roi", sa.Double(), nullable=True),
        sa.Column("cost_share", sa.Double(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_channel_report")),
        sa.UniqueConstraint(
            "period_start",
            "period_end",
            "model",
            "channel",
            "campaign",
            name=op.f("uq_hub_channel_report_period_start_period_end_model_channel_campaign"),
        ),
    )
    op.create_table(
        "hub_funnel_report",
        *_period_columns(),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("stage_order", sa.Integer(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("advanced", sa.Integer(), nullable=False),
        sa.Column("conversion", sa.Double(), nullable=True),
        sa.Column("median_days_in_stage", sa.Double(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_funnel_report")),
        sa.UniqueConstraint(
            "period_start",
            "period_end",
            "pipeline",
            "rep_id",
            "stage",
            name=op.f("uq_hub_funnel_report_period_start_period_end_pipeline_rep_id_stage"),
        ),
    )
    op.create_table(
        "hub_funnel_summary",
        *_period_columns(),
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("won", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("win_rate", sa.Double(), nullable=True),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("median_cycle_days", sa.Double(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_funnel_summary")),
        sa.UniqueConstraint(
            "period_start",
            "period_end",
            "pipeline",
            "rep_id",
            name=op.f("uq_hub_funnel_summary_period_start_period_end_pipeline_rep_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("hub_funnel_summary")
    op.drop_table("hub_funnel_report")
    op.drop_table("hub_channel_report")
    with op.batch_alter_table("hub_touches", schema=None) as batch_op:
        batch_op.drop_index("ix_hub_touches_contact_time")
    op.drop_table("hub_touches")
