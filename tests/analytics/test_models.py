"""The six attribution models on hand-built paths, and the vectorized code against the
straightforward per-conversion implementation on random paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hub.attribution.models import MODELS, attribute, attribute_baseline, build_paths

CONVERTED = pd.Timestamp("2026-03-20 12:00", tz="UTC")


def path(*touches: tuple[str, float], conversion: int = 1, campaign: str = "") -> pd.DataFrame:
    """Touches given as (channel, days before the conversion)."""
    return pd.DataFrame(
        {
            "conversion": conversion,
            "touch_at": [CONVERTED - pd.Timedelta(days=days) for _, days in touches],
            "converted_at": CONVERTED,
            "channel": [channel for channel, _ in touches],
            "campaign": campaign,
        }
    )


def weights(paths: pd.DataFrame, model: str, half_life: float = 7.0) -> dict[str, float]:
    result = attribute(paths, half_life)
    chosen = result[result["model"] == model]
    return dict(zip(chosen["channel"], chosen["weight"], strict=True))


def sums_per_conversion(result: pd.DataFrame) -> pd.Series:
    return result.groupby(["conversion", "model"])["weight"].sum()


THREE = path(("organic / google", 10), ("direct", 5), ("yandex / cpc", 1))


def test_first_and_last_touch_take_all() -> None:
    assert weights(THREE, "first_touch") == {"organic / google": 1.0}
    assert weights(THREE, "last_touch") == {"yandex / cpc": 1.0}


def test_last_non_direct_skips_a_final_direct_visit() -> None:
    ends_direct = path(("organic / google", 10), ("yandex / cpc", 5), ("direct", 1))
    assert weights(ends_direct, "last_non_direct") == {"yandex / cpc": 1.0}
    assert weights(path(("direct", 3), ("direct", 1)), "last_non_direct") == {"direct": 1.0}


def test_linear_splits_evenly_and_adds_up_a_repeated_channel() -> None:
    assert weights(THREE, "linear") == pytest.approx({c: 1 / 3 for c in THREE["channel"]})
    repeated = path(("email", 9), ("yandex / cpc", 4), ("email", 2), ("direct", 1))
    assert weights(repeated, "linear") == pytest.approx({"email": 0.5, "yandex / cpc": 0.25, "direct": 0.25})


def test_time_decay_halves_per_half_life() -> None:
    raw = {"organic / google": 2 ** (-10 / 7), "direct": 2 ** (-5 / 7), "yandex / cpc": 2 ** (-1 / 7)}
    total = sum(raw.values())
    assert weights(THREE, "time_decay") == pytest.approx({k: v / total for k, v in raw.items()})
    # One half-life apart: the older touch weighs exactly half the newer one.
    two = weights(path(("email", 15), ("direct", 1)), "time_decay", half_life=14.0)
    assert two["email"] == pytest.approx(two["direct"] / 2)


def test_time_decay_of_very_old_paths_does_not_underflow() -> None:
    old = path(("email", 5000), ("direct", 4000))
    assert sum(weights(old, "time_decay", half_life=1.0).values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("touches", "expected"),
    [
        ([("a", 1)], {"a": 1.0}),
        ([("a", 2), ("b", 1)], {"a": 0.5, "b": 0.5}),
        ([("a", 3), ("b", 2), ("c", 1)], {"a": 0.4, "b": 0.2, "c": 0.4}),
        (
            [("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1)],
            {"a": 0.4, "b": 0.2 / 3, "c": 0.2 / 3, "d": 0.2 / 3, "e": 0.4},
        ),
    ],
)
def test_position_based_40_20_40(touches: list[tuple[str, float]], expected: dict[str, float]) -> None:
    assert weights(path(*touches), "position_based") == pytest.approx(expected)


def test_every_model_sums_to_one_per_conversion_on_hand_built_paths() -> None:
    paths = pd.concat(
        [
            path(("a", 1), conversion=1),
            path(("a", 2), ("b", 1), conversion=2),
            path(("direct", 4), ("b", 3), ("direct", 2), ("a", 1), conversion=3),
            path(("direct", 1), ("direct", 0), conversion=4),
        ]
    )
    result = attribute(paths, 7.0)
    sums = sums_per_conversion(result)
    assert len(sums) == 4 * len(MODELS)
    assert np.allclose(sums.to_numpy(), 1.0)


def test_touches_at_the_same_moment_keep_their_order() -> None:
    same_time = path(("email", 1), ("yandex / cpc", 1))
    assert weights(same_time, "first_touch") == {"email": 1.0}
    assert weights(same_time, "last_touch") == {"yandex / cpc": 1.0}


def test_campaigns_are_kept_apart() -> None:
    paths = pd.concat(
        [path(("yandex / cpc", 2), campaign="brand"), path(("yandex / cpc", 1), campaign="generic")]
    )
    result = attribute(paths, 7.0)
    linear = result[result["model"] == "linear"].set_index("campaign")["weight"]
    assert linear.to_dict() == pytest.approx({"brand": 0.5, "generic": 0.5})


def test_lookback_window_and_later_touches_are_excluded() -> None:
    touches = pd.DataFrame(
        {
            "contact_id": [7, 7, 7, 7, 8],
            "touch_at": [CONVERTED - pd.Timedelta(days=d) for d in (120, 30, 0, -1, 2)],
            "channel": ["too old", "in window", "at conversion", "after", "other contact"],
            "campaign": "",
        }
    )
    conversions = pd.DataFrame(
        {"conversion": [1, 2], "contact_id": [7, 9], "converted_at": [CONVERTED, CONVERTED]}
    )
    paths, untouched = build_paths(touches, conversions, lookback_days=90)
    assert sorted(paths["channel"]) == ["at conversion", "in window"]
    assert untouched["conversion"].tolist() == [2]


def test_vectorized_models_equal_the_straightforward_ones_on_random_paths() -> None:
    rng = np.random.default_rng(20261122)
    n = 3000
    channels = np.array(["direct", "yandex / cpc", "organic / google", "email", "social / vk.com"])
    paths = pd.DataFrame(
        {
            "conversion": rng.integers(0, 400, n),
            "touch_at": CONVERTED - pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"),
            "converted_at": CONVERTED,
            "channel": channels[rng.integers(0, len(channels), n)],
            "campaign": np.array(["", "brand", "retarget"])[rng.integers(0, 3, n)],
        }
    )
    fast = attribute(paths, 7.0)
    slow = attribute_baseline(paths, 7.0)
    key = ["conversion", "model", "channel", "campaign"]
    merged = fast.merge(slow, on=key, how="outer", suffixes=("_fast", "_slow"), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert np.allclose(merged["weight_fast"], merged["weight_slow"])
    assert np.allclose(sums_per_conversion(fast).to_numpy(), 1.0)
    assert math.isclose(fast["weight"].sum(), paths["conversion"].nunique() * len(MODELS))
