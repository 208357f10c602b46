"""The identity and routing benchmark still runs end to end at a tiny scale (figures are printed,
never asserted)."""

from __future__ import annotations

import subprocess
import sys


def test_identity_bench_runs_at_tiny_scale() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.identity",
            "--rows",
            "1000",
            "--leads",
            "100",
            "--route-leads",
            "1000",
            "--reps",
            "20",
            "--febrl",
            "febrl1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for section in ("febrl1", "crm", "Incremental", "Routing", "max/min"):
        assert section in result.stdout
    assert "ratio" in result.stdout
