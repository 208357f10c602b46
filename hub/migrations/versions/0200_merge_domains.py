"""Merge the domain branches into one head.

The first domains (mail, accounting, identity, analytics) were built at the same time, each
with its own migration branch off 0001. This revision joins them, so that every later
migration has one parent and `alembic history` reads as a line again.

Revision ID: 0200
Revises: 0104, 0105a, 0106, 0107
"""

from collections.abc import Sequence

revision: str = "0200"
down_revision: str | Sequence[str] | None = ("0104", "0105a", "0106", "0107")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
