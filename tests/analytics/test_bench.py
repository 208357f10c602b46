"""The attribution benchmark still runs (at a tiny scale) and its two implementations agree."""

from __future__ import annotations

import re
import subprocess
import sys

from hub.settings import PROJECT_DIR


def test_attribution_bench_runs_at_tiny_scale() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.attribution", "--rows", "1000"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "x faster" in result.stdout
    difference = float(re.search(r"largest weight difference (\S+)", result.stdout).group(1))
    assert difference < 1e-9
