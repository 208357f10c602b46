"""The `calls` asset and the CDR folder sensor in Dagster: counts and a masked preview in the
metadata; the sensor asks for a run when a CDR file appears or grows, and only then."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize

from assets.resources import HubSettingsResource, StoreResource, TelephonyResource
from assets.telephony import calls, cdr_files_sensor
from tests.telephony.test_asterisk_cdr import ROWS, write_cdr


def test_calls_asset_reports_counts_and_masks_numbers(crm_sqlite: str, tmp_path: Path) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    write_cdr(folder / "Master.csv", ROWS)
    resources = {
        "store": StoreResource(database_url=crm_sqlite),
        "telephony": TelephonyResource(cdr_dir=str(folder)),
        "hub_settings": HubSettingsResource(),
    }
    result = materialize([calls], resources=resources, instance=DagsterInstance.ephemeral())
    assert result.success
    [materialization] = result.asset_materializations_for_node("calls")
    meta = {key: value.value for key, value in materialization.metadata.items()}
    assert meta["written"] == 5 and meta["asterisk_written"] == 5 and meta["leads_created"] == 2
    preview = str(meta["preview"])
    assert "+7********67" in preview  # the known client, masked
    assert "79161234567" not in preview and "9035550101" not in preview


def test_sensor_fires_for_new_and_grown_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    telephony = TelephonyResource(cdr_dir=str(folder))

    def tick(cursor: str | None) -> tuple[RunRequest | SkipReason, str | None]:
        context = build_sensor_context(cursor=cursor, resources={"telephony": telephony})
        outcome = cdr_files_sensor(context)
        return outcome, context.cursor

    empty, cursor = tick(None)
    assert isinstance(empty, SkipReason)
    write_cdr(folder / "Master.csv", ROWS[:2])
    first, cursor = tick(cursor)
    assert isinstance(first, RunRequest)
    quiet, cursor = tick(cursor)
    assert isinstance(quiet, SkipReason)
    write_cdr(folder / "Master.csv", ROWS[2:], mode="a")
    grown, cursor = tick(cursor)
    assert isinstance(grown, RunRequest) and grown.run_key != first.run_key
    assert grown.tags["cdr_files"] == "Master.csv"
