"""All six attribution models over many touches and conversions: the hub's vectorized numpy code
beside a straightforward pandas groupby-per-conversion implementation of the same models, on the
same paths in the same process; prints both times, their ratio, and the largest weight difference.

    python -m bench.attribution --rows 1000000 [--conversions 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from hub.attribution.models import MODELS, attribute, attribute_baseline, build_paths

CHANNELS = np.array(
    [
        "direct",
        "yandex / cpc",
        "google / cpc",
        "organic / yandex",
        "organic / google",
        "vk / social",
        "email",
        "referral / partner.ru",
    ]
)
CAMPAIGNS = np.array(["", "brand", "generic", "retarget"])
SPAN_DAYS = 150


def synthetic(rows: int, conversions: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`rows` touches over `conversions` contacts (one conversion each, late in the span, so
    most touches fall inside a 90-day look-back and some after the conversion)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    touches = pd.DataFrame(
        {
            "contact_id": rng.integers(0, conversions, rows),
            "touch_at": start + pd.to_timedelta(rng.integers(0, SPAN_DAYS * 86_400, rows), unit="s"),
            "channel": CHANNELS[rng.integers(0, len(CHANNELS), rows)],
            "campaign": CAMPAIGNS[rng.integers(0, len(CAMPAIGNS), rows)],
        }
    ).sort_values(["touch_at"], kind="stable", ignore_index=True)
    converted = start + pd.to_timedelta(rng.integers(90 * 86_400, SPAN_DAYS * 86_400, conversions), unit="s")
    conversions_frame = pd.DataFrame(
        {
            "conversion": np.arange(conversions),
            "contact_id": np.arange(conversions),
            "converted_at": converted,
        }
    )
    return touches, conversions_frame


def timed(label: str, fn, *args):  # type: ignore[no-untyped-def]
    """Run fn(*args); print wall and CPU seconds (CPU time is steadier on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {label:<44} {wall:9.3f} s wall {cpu:9.3f} s CPU")
    return result, (wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="touches")
    parser.add_argument("--conversions", type=int, default=None, help="conversions [default: rows / 10]")
    parser.add_argument("--lookback-days", type=float, default=90.0)
    parser.add_argument("--half-life-days", type=float, default=7.0)
    args = parser.parse_args()
    conversions = args.conversions or max(1, args.rows // 10)

    touches, conversion_frame = synthetic(args.rows, conversions)
    print(f"{args.rows:,} touches, {conversions:,} conversions, models: {', '.join(MODELS)}")
    (paths, untouched), _ = timed(
        "paths (touches in each look-back window)", build_paths, touches, conversion_frame, args.lookback_days
    )
    print(f"  {len(paths):,} touch-conversion pairs; {len(untouched):,} conversions without a touch")
    fast, fast_seconds = timed("hub: vectorized numpy, all six models", attribute, paths, args.half_life_days)
    slow, slow_seconds = timed(
        "baseline: pandas groupby per conversion", attribute_baseline, paths, args.half_life_days
    )

    key = ["conversion", "model", "channel", "campaign"]
    merged = fast.merge(slow, on=key, how="outer", suffixes=("_hub", "_baseline"))
    difference = (merged["weight_hub"] - merged["weight_baseline"]).abs().max()
    sums = fast.groupby(["conversion", "model"])["weight"].sum()
    print(
        f"  result rows: hub {len(fast):,}, baseline {len(slow):,}; largest weight difference {difference:.2e}"
    )
    print(f"  weights per conversion and model sum to 1 within {float((sums - 1).abs().max()):.1e}")
    for name, index in (("wall", 0), ("CPU", 1)):
        print(
            f"{name}: hub {fast_seconds[index]:.3f} s vs baseline {slow_seconds[index]:.3f} s: "
            f"{slow_seconds[index] / fast_seconds[index]:,.1f}x faster "
            f"({fast_seconds[index] / max(len(paths), 1) * 1e9:,.0f} ns per touch-conversion pair, all six models)"
        )


if __name__ == "__main__":
    main()
