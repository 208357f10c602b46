"""The README's main command: `hub demo` on a fresh data folder, run twice, and killed halfway."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from hub.store.models import Lead
from tests.store_snapshot import diff_snapshots, store_snapshot


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    env["HUB_DATA_DIR"] = str(data_dir)
    return env


def _demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo"],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hub.db'}"


@pytest.mark.slow
def test_demo_runs_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "var"
    out = _demo(data).stdout
    assert "leads in the CRM" in out and "FAILED" not in out
    # Reps' alerts are really delivered (as .eml files) and the first is shown, in Russian.
    assert "ALERTS NOT DELIVERED" not in out
    assert "The first alert, as" in out and "Письмо прочитано — позвоните:" in out
    assert len(list((data / "demo" / "alerts").glob("*.eml"))) == 5
    first = store_snapshot(_url(data))
    assert first["crm_leads"] and first["hub_quarantine"]
    _demo(data)
    assert diff_snapshots(first, store_snapshot(_url(data))) == {}
    assert (data / "dagster_home").is_dir()  # run history kept for `hub ui`


def _leads_written(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.execute(text("select name from sqlite_master where name='crm_leads'")).first():
                return 0
            return int(conn.scalar(select(func.count()).select_from(Lead)) or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_demo_killed_halfway_then_rerun_equals_one_clean_run(tmp_path: Path) -> None:
    # Both runs use the same folder: cursor names of folder sources contain its path.
    data = tmp_path / "var"
    _demo(data)
    clean = store_snapshot(_url(data))
    shutil.rmtree(data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "demo"],
        env=_env(data),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while _leads_written(_url(data)) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_midway = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed_midway, "the demo finished before it could be killed"
    _demo(data)
    assert diff_snapshots(clean, store_snapshot(_url(data))) == {}
