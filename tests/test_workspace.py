"""The Dagster workspace loads: `dagster definitions validate -w workspace.yaml` passes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hub.processes import console_script

ROOT = Path(__file__).resolve().parent.parent


def test_definitions_validate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    env.update(HUB_DATA_DIR=str(tmp_path / "var"), DAGSTER_HOME=str(tmp_path))
    result = subprocess.run(
        [console_script("dagster"), "definitions", "validate", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All code locations passed validation" in result.stdout + result.stderr
