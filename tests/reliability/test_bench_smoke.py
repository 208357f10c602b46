"""The webhook intake benchmark keeps working (tiny scale; figures printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys


def test_webhook_intake_bench_runs_and_loses_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.webhook_intake", "--rows", "200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio" in result.stdout and "lost: 0" in result.stdout
