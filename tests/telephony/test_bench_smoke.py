"""The telephony benchmark keeps working at tiny scale (its figures are printed, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_bench_telephony_runs_at_small_scale() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.telephony", "--rows", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio hub/bare rows per second" in result.stdout
    ingest = re.search(r"hub CDR ingest\s+: ([\d,]+) rows -> ([\d,]+) calls written", result.stdout)
    assert ingest is not None
    rows, calls = (int(group.replace(",", "")) for group in ingest.groups())
    assert rows >= 1000 and 0 < calls <= rows  # the last call's legs are kept whole
