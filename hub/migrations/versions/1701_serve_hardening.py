"""`hub serve` hardened (issue 17): webhook posts keep their raw bytes, quarantine keeps the
bytes of undecodable input, and pixel fetches are counted in one row per email.

Existing pixel fetches are folded into their email's row (counts, first and last fetch, the
last agent and address, the last machine reason). Existing inbox rows keep their text.

Revision ID: 1701
Revises: 2101_rep_locale_alert_details
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1701"
down_revision: str | Sequence[str] | None = "2101_rep_locale_alert_details"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOLDED = "hub_mail_pixel_folded_1701"


def _last(column: str, where: str = "") -> str:
    return (
        f"(SELECT l.{column} FROM hub_mail_pixel_hits l WHERE l.message_id = h.message_id {where} "
        "ORDER BY l.id DESC LIMIT 1)"
    )


def _pixel_counts_table(name: str, named: bool) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("machine_fetches", sa.Integer(), nullable=False),
        sa.Column("first_fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("machine_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}") if named else None),
        sa.UniqueConstraint("message_id", name=op.f(f"uq_{name}_message_id") if named else None),
    )


_COLUMNS = (
    "message_id, fetches, machine_fetches, first_fetched_at, last_fetched_at, remote_ip, user_agent, "
    "machine_reason, created_at"
)


def upgrade() -> None:
    with op.batch_alter_table("hub_webhook_inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("hub_quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_bytes", sa.LargeBinary(), nullable=True))

    _pixel_counts_table(_FOLDED, named=False)
    op.execute(
        f"INSERT INTO {_FOLDED} ({_COLUMNS}) "
        "SELECT h.message_id, COUNT(*), SUM(CASE WHEN h.machine_reason IS NULL THEN 0 ELSE 1 END), "
        f"MIN(h.fetched_at), MAX(h.fetched_at), {_last('remote_ip')}, {_last('user_agent')}, "
        f"{_last('machine_reason', 'AND l.machine_reason IS NOT NULL')}, MIN(h.created_at) "
        "FROM hub_mail_pixel_hits h GROUP BY h.message_id"
    )
    with op.batch_alter_table("hub_mail_pixel_hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_mail_pixel_hits_message_id"))
    op.drop_table("hub_mail_pixel_hits")
    _pixel_counts_table("hub_mail_pixel_hits", named=True)
    op.execute(f"INSERT INTO hub_mail_pixel_hits ({_COLUMNS}) SELECT {_COLUMNS} FROM {_FOLDED}")
    op.drop_table(_FOLDED)


def downgrade() -> None:
    # The per-fetch table comes back with one fetch (the last) per email: counts are lost.
    op.create_table(
        _FOLDED,
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remote_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("machine_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        f"INSERT INTO {_FOLDED} (message_id, fetched_at, remote_ip, user_agent, machine_reason, created_at) "
        "SELECT message_id, last_fetched_at, remote_ip, user_agent, machine_reason, created_at "
        "FROM hub_mail_pixel_hits"
    )
    op.drop_table("hub_mail_pixel_hits")
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
    op.execute(
        "INSERT INTO hub_mail_pixel_hits (message_id, fetched_at, remote_ip, user_agent, machine_reason, "
        f"created_at) SELECT message_id, fetched_at, remote_ip, user_agent, machine_reason, created_at FROM {_FOLDED}"
    )
    op.drop_table(_FOLDED)

    with op.batch_alter_table("hub_quarantine", schema=None) as batch_op:
        batch_op.drop_column("raw_bytes")
    # Posts kept only as bytes get their text back (UTF-8, invalid bytes replaced, as the older
    # release stored them) before the column becomes NOT NULL again.
    conn = op.get_bind()
    inbox = sa.table(
        "hub_webhook_inbox", sa.column("id"), sa.column("raw", sa.LargeBinary()), sa.column("body")
    )
    for post_id, raw in conn.execute(sa.select(inbox.c.id, inbox.c.raw).where(inbox.c.body.is_(None))).all():
        text = bytes(raw or b"").decode("utf-8", errors="replace").replace("\x00", "\\x00")
        conn.execute(sa.update(inbox).where(inbox.c.id == post_id).values(body=text))
    with op.batch_alter_table("hub_webhook_inbox", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("raw")
