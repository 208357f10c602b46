"""The benchmarks keep working: each runs at tiny scale (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["bench.web_leads"])
def test_bench_runs_at_small_scale(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--rows", "500"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio" in result.stdout
