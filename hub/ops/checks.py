"""Verdicts of the checks that apply across assets: a row count far from its usual range, a
quarantine share that grew, leads left unassigned. Pure functions and store queries, no Dagster."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.masking import mask_phone
from hub.store.models import Lead
from hub.timeutil import as_utc, utcnow

# Metadata keys an asset reports its row count under, in order of preference.
ROW_COUNT_KEYS = ("dagster/row_count", "rows_in", "rows", "row_count")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def row_count_of(metadata: Mapping[str, Any]) -> float | None:
    """The row count an asset reported in its materialization metadata, if any."""
    for key in ROW_COUNT_KEYS:
        value = metadata.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return float(value)
    return None


def row_count_verdict(
    latest: float | None,
    history: Sequence[float],
    *,
    min_history: int,
    tolerance: float,
    min_change: float = 0.0,
) -> Verdict:
    """Is `latest` within `tolerance` median absolute deviations of the previous runs' median?
    The MAD (not the standard deviation) keeps one past outlier from widening the range; a
    difference below `min_change` rows never counts (small incremental batches are bursty)."""
    if latest is None:
        return Verdict(
            True, "The asset reports no row count (rows_in / dagster/row_count): nothing to compare"
        )
    if len(history) < min_history:
        return Verdict(
            True,
            f"{len(history)} previous runs with a row count; at least {min_history} are needed to judge",
            {"rows": latest, "history_runs": len(history)},
        )
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    # A source that always returns the same count has MAD 0: allow 10% (at least one row) of drift.
    scale = mad if mad > 0 else max(1.0, 0.1 * abs(median))
    margin = max(tolerance * scale, min_change)
    low, high = median - margin, median + margin
    passed = low <= latest <= high
    meta = {
        "rows": latest,
        "usual_median": median,
        "usual_low": round(max(0.0, low), 2),
        "usual_high": round(high, 2),
        "history_runs": len(history),
    }
    if passed:
        return Verdict(True, f"{latest:g} rows, usual range {max(0.0, low):g}..{high:g}", meta)
    return Verdict(
        False,
        f"{latest:g} rows is far from the usual {median:g} (range {max(0.0, low):g}..{high:g} over "
        f"{len(history)} runs): check the source for an outage, a changed filter or a duplicate export",
        meta,
    )


def quarantine_verdict(metadata: Mapping[str, Any], *, max_share: float, min_rows: int) -> Verdict:
    """Fail when a run quarantined a large share of its input (a format change at the source)."""
    quarantined = metadata.get("quarantined")
    rows_in = row_count_of(metadata)
    if not isinstance(quarantined, (int, float)) or isinstance(quarantined, bool):
        return Verdict(True, "The asset reports no quarantine count: nothing to check")
    if not rows_in:
        return Verdict(
            True, f"{quarantined:g} quarantined, no input rows reported", {"quarantined": quarantined}
        )
    share = quarantined / rows_in
    meta: dict[str, Any] = {"quarantined": quarantined, "rows_in": rows_in, "share": round(share, 4)}
    if quarantined >= min_rows and share > max_share:
        return Verdict(
            False,
            f"{quarantined:g} of {rows_in:g} input rows ({share:.0%}) went to quarantine, above "
            f"{max_share:.0%}: the source's format may have changed; see hub_quarantine for the reasons",
            meta,
        )
    return Verdict(True, f"{quarantined:g} of {rows_in:g} input rows quarantined ({share:.0%})", meta)


def unassigned_leads_verdict(session: Session, max_age: timedelta, now: datetime | None = None) -> Verdict:
    """Leads waiting for a rep longer than `max_age` (counted from when the hub received them)."""
    now = now or utcnow()
    waiting = (
        Lead.assigned_rep_id.is_(None),
        Lead.status.in_(("new", "open")),
        Lead.created_at <= now - max_age,
    )
    count = int(session.scalar(select(func.count()).select_from(Lead).where(*waiting)) or 0)
    minutes = int(max_age.total_seconds() // 60)
    if count == 0:
        return Verdict(True, f"No lead has waited for a rep longer than {minutes} min", {"unassigned_old": 0})
    oldest = session.execute(
        select(Lead.id, Lead.source_system, Lead.phone_e164, Lead.created_at, Lead.routing_reason)
        .where(*waiting)
        .order_by(Lead.created_at)
        .limit(5)
    ).all()
    oldest_minutes = int((now - as_utc(oldest[0].created_at)).total_seconds() // 60)
    sample = "; ".join(
        f"lead {r.id} ({r.source_system}, {mask_phone(r.phone_e164)}): {r.routing_reason or 'not routed yet'}"
        for r in oldest
    )
    return Verdict(
        False,
        f"{count} leads have waited for a rep longer than {minutes} min (oldest {oldest_minutes} min). "
        f"Check that reps are active and on shift, and that lead_assignments runs. {sample}",
        {"unassigned_old": count, "oldest_minutes": oldest_minutes},
    )
