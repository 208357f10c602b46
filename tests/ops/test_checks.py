"""The checks every asset gets: a row count far from its usual range (judged on the asset's own
previous materializations), a quarantine share that jumped, leads left waiting for a rep."""

from __future__ import annotations

from datetime import timedelta

from dagster import Definitions, MaterializeResult, asset, define_asset_job, instance_for_test

from assets import ops
from assets.resources import build_resources
from hub.ops.checks import quarantine_verdict, row_count_verdict, unassigned_leads_verdict
from hub.settings import load_settings
from hub.store.db import session_scope
from hub.store.models import Lead, Rep
from hub.timeutil import utcnow


def test_row_count_verdict_uses_median_and_mad() -> None:
    usual = [100, 104, 98, 101, 97, 103, 99]
    assert row_count_verdict(102, usual, min_history=5, tolerance=4).passed
    far = row_count_verdict(15, usual, min_history=5, tolerance=4)
    assert not far.passed and "far from the usual 100" in far.description
    assert not row_count_verdict(400, usual, min_history=5, tolerance=4).passed
    # One wild past run does not widen the range for good (MAD, not standard deviation).
    assert not row_count_verdict(180, [*usual, 5000], min_history=5, tolerance=4).passed
    # Too little history: no verdict yet; a constant source tolerates small drift only.
    assert row_count_verdict(9999, usual[:3], min_history=5, tolerance=4).passed
    assert row_count_verdict(50, [50] * 6, min_history=5, tolerance=4).passed
    assert not row_count_verdict(80, [50] * 6, min_history=5, tolerance=4).passed
    assert row_count_verdict(None, usual, min_history=5, tolerance=4).passed
    # Small incremental batches are bursty: a few rows more or less is not an outage.
    bursty = [0, 3, 1, 2, 0, 5]
    assert not row_count_verdict(12, bursty, min_history=5, tolerance=4).passed
    assert row_count_verdict(12, bursty, min_history=5, tolerance=4, min_change=20).passed
    assert not row_count_verdict(60, bursty, min_history=5, tolerance=4, min_change=20).passed


def test_quarantine_verdict() -> None:
    assert quarantine_verdict({"rows_in": 100, "quarantined": 6}, max_share=0.25, min_rows=5).passed
    bad = quarantine_verdict({"rows_in": 100, "quarantined": 40}, max_share=0.25, min_rows=5)
    assert not bad.passed and "40 of 100" in bad.description
    # A handful of broken records in a tiny batch is not a format change.
    assert quarantine_verdict({"rows_in": 4, "quarantined": 3}, max_share=0.25, min_rows=5).passed
    assert quarantine_verdict({"written": 10}, max_share=0.25, min_rows=5).passed


def test_unassigned_leads_older_than_the_limit(store_url: str) -> None:
    now = utcnow()

    def lead(ref: str, minutes_ago: int, **extra: object) -> Lead:
        at = now - timedelta(minutes=minutes_ago)
        return Lead(
            source_system="site_api",
            source_ref=ref,
            phone_e164="+79161234567",
            submitted_at=at,
            created_at=at,
            **extra,
        )

    with session_scope(store_url) as session:
        rep = Rep(name="Кузнецова Анна")
        session.add(rep)
        session.flush()
        session.add_all(
            [
                lead("fresh", 2, status="open"),
                lead("assigned-old", 60, status="open", assigned_rep_id=rep.id),
                lead("duplicate-old", 60, status="duplicate"),
            ]
        )
    with session_scope(store_url) as session:
        assert unassigned_leads_verdict(session, timedelta(minutes=10), now).passed
    with session_scope(store_url) as session:
        session.add(lead("waiting", 45, status="open", routing_reason="no eligible rep on shift"))
        session.add(lead("never-resolved", 30, status="new"))
    with session_scope(store_url) as session:
        verdict = unassigned_leads_verdict(session, timedelta(minutes=10), now)
    assert not verdict.passed
    assert verdict.metadata == {"unassigned_old": 2, "oldest_minutes": 45}
    assert "no eligible rep on shift" in verdict.description
    assert "+79161234567" not in verdict.description  # masked


def test_row_count_check_flags_a_run_far_from_the_usual_range(sqlite_store: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_OPS__ROW_COUNT_MIN_HISTORY", "3")
    counts = iter([100, 102, 98, 101, 12])

    @asset(group_name="ops_test", owners=["team:ops"], kinds={"python"}, description="Reads a source")
    def calls_source() -> MaterializeResult:
        n = next(counts)
        return MaterializeResult(metadata={"rows_in": n, "quarantined": 0})

    checks = ops.build_ops_checks([calls_source])
    defs = Definitions(
        assets=[calls_source],
        asset_checks=checks,
        jobs=[define_asset_job("source_job", selection="*")],
        resources=build_resources(load_settings()),
    )
    job = defs.resolve_job_def("source_job")
    verdicts = []
    with instance_for_test() as instance:
        for _ in range(5):
            result = job.execute_in_process(instance=instance)
            evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}
            verdicts.append(evaluation[ops.ROW_COUNT_CHECK].passed)
            assert evaluation[ops.QUARANTINE_CHECK].passed
    assert verdicts == [True] * 4 + [False]
    assert "12 rows is far from the usual 100" in evaluation[ops.ROW_COUNT_CHECK].description
