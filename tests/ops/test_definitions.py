"""The hub's Definitions as ops see them in the UI: every asset (of every domain) has a group, an
owner, a description and kinds, the checks every asset gets, automation or a freshness policy,
a schedule per source with its cron from settings, and the ops sensors on by default."""

from __future__ import annotations

import pytest
from dagster import AssetKey, DefaultScheduleStatus, DefaultSensorStatus

from assets import ops
from assets.definitions import all_assets, defs
from hub.settings import SettingsError, load_settings

REPOSITORY = defs.get_repository_def()
ASSET_NODES = {
    key: REPOSITORY.asset_graph.get(key) for key in REPOSITORY.asset_graph.materializable_asset_keys
}


@pytest.mark.parametrize("key", sorted(ASSET_NODES, key=lambda k: k.to_user_string()), ids=str)
def test_every_asset_is_described_for_ops(key: AssetKey) -> None:
    node = ASSET_NODES[key]
    name = key.to_user_string()
    assert node.group_name and node.group_name != "default", f"{name}: set group_name"
    assert node.owners, f"{name}: set owners=['team:...']"
    assert all(owner.startswith("team:") or "@" in owner for owner in node.owners), name
    assert node.description and len(node.description) >= 30, f"{name}: write a description ops can act on"
    assert node.kinds, f"{name}: set kinds (e.g. {{'python', 'sql'}})"


def test_every_asset_gets_the_ops_checks_and_automation() -> None:
    check_keys = set(REPOSITORY.asset_graph.asset_check_keys)
    roots = ops.root_keys(all_assets)
    assert roots, "at least one source asset"
    for key, node in ASSET_NODES.items():
        assert any(c.asset_key == key and c.name == ops.ROW_COUNT_CHECK for c in check_keys), key
        if key in roots:
            assert node.freshness_policy is not None, f"{key}: a source must show as late when stalled"
            assert any(c.asset_key == key and c.name == ops.QUARANTINE_CHECK for c in check_keys), key
        else:
            assert node.automation_condition is not None, f"{key}: downstream assets follow by automation"
    if AssetKey("lead_assignments") in ASSET_NODES:
        assert any(c.name == ops.UNASSIGNED_LEADS_CHECK for c in check_keys)
    ops_check_names = {ops.ROW_COUNT_CHECK, ops.QUARANTINE_CHECK, ops.UNASSIGNED_LEADS_CHECK}
    for check_key in check_keys:
        if check_key.name in ops_check_names:
            # Without a condition of its own a check is skipped by automation-launched runs.
            assert REPOSITORY.asset_graph.get(check_key).automation_condition is not None, check_key


def test_a_schedule_per_source_with_its_cron_from_settings() -> None:
    settings = load_settings().ops
    schedules = {s.name: s for s in REPOSITORY.schedule_defs}
    for source, keys in ops.sources(all_assets).items():
        schedule = schedules[f"{source}_schedule"]
        assert schedule.cron_schedule == settings.schedules.get(source, settings.default_cron)
        assert schedule.default_status == DefaultScheduleStatus.RUNNING
        job = REPOSITORY.get_job(f"{source}_sync")
        assert set(job.asset_layer.executable_asset_keys) >= set(keys)


def test_cron_comes_from_the_environment_and_a_bad_one_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_OPS__SCHEDULES__SITE", "*/3 * * * *")
    settings = load_settings()
    _, schedules = ops.source_jobs_and_schedules(all_assets, settings.ops, settings.timezone)
    assert {s.name: s.cron_schedule for s in schedules}["site_schedule"] == "*/3 * * * *"

    monkeypatch.setenv("HUB_OPS__SCHEDULES__SITE", "every ten minutes")
    settings = load_settings()
    with pytest.raises(SettingsError, match="HUB_OPS__SCHEDULES__SITE"):
        ops.source_jobs_and_schedules(all_assets, settings.ops, settings.timezone)


def test_ops_sensors_and_automation_run_by_default() -> None:
    sensors = {s.name: s for s in REPOSITORY.sensor_defs}
    for name in ("ops_run_failure_alerts", "ops_check_failure_alerts", "ops_alert_retries", "hub_automation"):
        assert sensors[name].default_status == DefaultSensorStatus.RUNNING, name
