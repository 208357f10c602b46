"""The accounting assets, checks and sensor in Dagster, on the demo's 1C recording and statement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, build_sensor_context, materialize

from assets.accounting import (
    ACCOUNTING_CHECKS,
    invoices,
    payment_allocations,
    payments,
    receivables,
    statements_folder_sensor,
    today_in,
)
from assets.folders import file_sizes
from assets.resources import AccountingResource, HubSettingsResource, StoreResource
from hub.demo.accounting import generate_accounting_demo
from hub.demo.seed import seed_crm
from hub.store.db import session_scope


def _demo(store: str, tmp_path: Path) -> dict[str, object]:
    today = today_in("Europe/Moscow")
    with session_scope(store) as session:
        seed_crm(session, today)
    with session_scope(store) as session:
        return generate_accounting_demo(session, tmp_path / "demo", today, store)["accounting"]  # type: ignore[return-value]


def _metadata(result: Any) -> dict[str, Any]:
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        found[materialization.asset_key.to_user_string()] = materialization.metadata
    return found


def test_assets_materialize_with_passing_checks_and_finance_metadata(
    sqlite_store: str, tmp_path: Path
) -> None:
    config = _demo(sqlite_store, tmp_path)
    resources = {
        "store": StoreResource(database_url=sqlite_store),
        "hub_settings": HubSettingsResource(),
        "accounting": AccountingResource(
            odata_snapshot_file=str(config["odata_snapshot_file"]),
            statements_dir=str(config["statements_dir"]),
        ),
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [invoices, payments, payment_allocations, receivables, *ACCOUNTING_CHECKS],
            resources=resources,
            instance=instance,
        )
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "allocations_within_amounts": True,
            "outstanding_equals_invoiced_minus_allocated": True,
        }
        meta = _metadata(result)
        aging = meta["receivables"]["aging_summary"].value
        assert "| bucket | invoices | outstanding |" in aging and "| 90+ |" in aging
        assert "oplata faktury" in meta["receivables"]["unmatched_queue"].value
        assert meta["payments"]["quarantined"].value == 1  # the statement's cut-off section
        again = materialize(
            [invoices, payments, payment_allocations, receivables], resources=resources, instance=instance
        )
        rerun = _metadata(again)
        assert rerun["payment_allocations"]["allocations_written"].value == 0
        assert rerun["payments"]["written"].value == 0


def test_sensor_requests_a_run_for_a_new_or_grown_statement_only(tmp_path: Path) -> None:
    folder = tmp_path / "statements"
    folder.mkdir()
    resource = AccountingResource(statements_dir=str(folder))
    with DagsterInstance.ephemeral() as instance:
        empty = statements_folder_sensor(build_sensor_context(instance=instance), accounting=resource)
        assert "no files" in str(empty.skip_message)
        (folder / "kl_to_1c.txt").write_bytes(b"1CClientBankExchange\r\n")
        context = build_sensor_context(instance=instance)
        first = statements_folder_sensor(context, accounting=resource)
        assert first.run_key.startswith("statements-")
        seen = json.dumps(file_sizes(str(folder)))  # the cursor the first tick saved
        same = statements_folder_sensor(
            build_sensor_context(instance=instance, cursor=seen), accounting=resource
        )
        assert "no statement file" in str(same.skip_message)
        (folder / "kl_to_1c.txt").write_bytes("1CClientBankExchange\r\nКонецФайла\r\n".encode("cp1251"))
        grown = statements_folder_sensor(
            build_sensor_context(instance=instance, cursor=seen), accounting=resource
        )
        assert grown.run_key != first.run_key
