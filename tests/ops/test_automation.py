"""Automation as the daemon evaluates it: after a source's scheduled job, the eager conditions
applied centrally request the downstream assets and their ops checks, and nothing when no
source has new data."""

from __future__ import annotations

import pytest
from dagster import AssetCheckKey, AssetKey, evaluate_automation_conditions, instance_for_test

from assets import ops
from tests.ops.helpers import hub_definitions


def test_a_source_run_makes_automation_request_its_downstream_assets_and_checks(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    defs = hub_definitions()
    with instance_for_test() as instance:
        # Eager waits until every upstream exists: a new deployment runs the whole graph once.
        assert defs.resolve_job_def("hub_main_job").execute_in_process(instance=instance).success
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        downstream = AssetKey("resolved_leads")
        settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert settled.total_requested == 0  # nothing new upstream: nothing to do

        source_job = defs.resolve_job_def("site_sync")
        assert source_job.execute_in_process(instance=instance).success

        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
        assert second.get_num_requested(downstream) == 1
        # The tester counts assets only; its requested subsets also hold the checks.
        requested = {subset.key for subset in second._requested_subsets if not subset.is_empty}
        assert AssetCheckKey(downstream, ops.ROW_COUNT_CHECK) in requested
        # The source itself is scheduled, not automated.
        assert second.get_num_requested(AssetKey("site_leads")) == 0
