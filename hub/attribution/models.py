"""The six attribution models, vectorized over all conversion paths at once with numpy: each
conversion's touches get weights per model that sum to one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hub.channels import DIRECT

MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based")
# Position-based (U-shaped): first and last touch 40 % each, the middle ones share the rest.
POSITION_ENDS = 0.4
NANOS_PER_DAY = 86_400 * 10**9

# A path is one row per (conversion, touch) pair, as built by `build_paths`.
PATH_COLUMNS = ("conversion", "touch_at", "converted_at", "channel", "campaign")


@dataclass(frozen=True)
class _Groups:
    """Positions of the sorted path rows inside their conversion's group."""

    starts: np.ndarray  # first row of each group
    sizes: np.ndarray  # rows per group
    group: np.ndarray  # group number of each row
    position: np.ndarray  # 0-based position of each row within its group
    size: np.ndarray  # size of each row's group


def _groups(conversion_codes: np.ndarray) -> _Groups:
    n = len(conversion_codes)
    boundary = np.empty(n, dtype=bool)
    boundary[:1] = True
    np.not_equal(conversion_codes[1:], conversion_codes[:-1], out=boundary[1:])
    starts = np.flatnonzero(boundary)
    sizes = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(len(starts)), sizes)
    position = np.arange(n) - starts[group]
    return _Groups(starts, sizes, group, position, sizes[group])


def build_paths(
    touches: pd.DataFrame, conversions: pd.DataFrame, lookback_days: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pair each conversion with its contact's touches in (converted_at - lookback, converted_at].

    touches: contact_id, touch_at, channel, campaign[, touch_id]; conversions: conversion,
    contact_id, converted_at. Returns (paths, conversions without a touch in the window)."""
    right = touches[["contact_id", "touch_at", "channel", "campaign"]]
    paths = conversions[["conversion", "contact_id", "converted_at"]].merge(
        right, on="contact_id", how="inner"
    )
    window = pd.Timedelta(days=lookback_days)
    inside = (paths["touch_at"] <= paths["converted_at"]) & (
        paths["touch_at"] > paths["converted_at"] - window
    )
    paths = paths.loc[inside, list(PATH_COLUMNS)]
    untouched = conversions.loc[~conversions["conversion"].isin(paths["conversion"])]
    return paths.reset_index(drop=True), untouched.reset_index(drop=True)


def attribute(paths: pd.DataFrame, half_life_days: float, models: tuple[str, ...] = MODELS) -> pd.DataFrame:
    """Weights per conversion, model, channel and campaign; they sum to one per conversion and model.

    Ties in time keep the paths' row order (the caller sorts touches of equal time by id)."""
    if paths.empty:
        return pd.DataFrame(
            {
                "conversion": pd.Series(dtype=paths["conversion"].dtype if len(paths.columns) else "int64"),
                "model": pd.Series(dtype="object"),
                "channel": pd.Series(dtype="object"),
                "campaign": pd.Series(dtype="object"),
                "weight": pd.Series(dtype="float64"),
            }
        )
    conv_codes, conv_values = pd.factorize(paths["conversion"], sort=False)
    touch_ns = paths["touch_at"].to_numpy(dtype="datetime64[ns]").view("int64")
    order = np.lexsort((np.arange(len(paths)), touch_ns, conv_codes))
    codes = conv_codes[order]
    touch_ns = touch_ns[order]
    converted_ns = paths["converted_at"].to_numpy(dtype="datetime64[ns]").view("int64")[order]
    channel_codes, channel_values = pd.factorize(
        pd.MultiIndex.from_arrays([paths["channel"].to_numpy()[order], paths["campaign"].to_numpy()[order]])
    )
    direct = pd.Series(channel_values.get_level_values(0) == DIRECT).to_numpy()[channel_codes]
    g = _groups(codes)
    last = g.position == g.size - 1
    first = g.position == 0

    weights: dict[str, np.ndarray] = {}
    if "first_touch" in models:
        weights["first_touch"] = first.astype(float)
    if "last_touch" in models:
        weights["last_touch"] = last.astype(float)
    if "last_non_direct" in models:
        row = np.arange(len(codes))
        candidate = np.where(direct, -1, row)
        chosen = np.maximum.reduceat(candidate, g.starts)
        # A path of direct touches only keeps its last touch.
        chosen = np.where(chosen < 0, g.starts + g.sizes - 1, chosen)
        weights["last_non_direct"] = (row == chosen[g.group]).astype(float)
    if "linear" in models:
        weights["linear"] = 1.0 / g.size
    if "time_decay" in models:
        age_days = (converted_ns - touch_ns) / NANOS_PER_DAY
        # Relative to the group's newest touch, so that old paths do not underflow to zero.
        age_days -= np.minimum.reduceat(age_days, g.starts)[g.group]
        raw = np.exp2(-age_days / half_life_days)
        weights["time_decay"] = raw / np.add.reduceat(raw, g.starts)[g.group]
    if "position_based" in models:
        middle = (1.0 - 2 * POSITION_ENDS) / np.maximum(g.size - 2, 1)
        weight = np.where(first | last, POSITION_ENDS, middle)
        weight = np.where(g.size == 2, 0.5, weight)
        weights["position_based"] = np.where(g.size == 1, 1.0, weight)

    n_channels = len(channel_values)
    frames = []
    for model, weight in weights.items():
        keep = weight > 0
        key = codes[keep].astype(np.int64) * n_channels + channel_codes[keep]
        if model in ("first_touch", "last_touch", "last_non_direct"):
            unique_keys, summed = key, weight[keep]  # exactly one touch per conversion
        else:
            # Sum a channel's touches within a path: sort the composite key once, add runs.
            sorter = np.argsort(key, kind="stable")
            sorted_keys = key[sorter]
            run_starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            unique_keys = sorted_keys[run_starts]
            summed = np.add.reduceat(weight[keep][sorter], run_starts)
        conv_index = unique_keys // n_channels
        channel_index = unique_keys % n_channels
        frames.append(
            pd.DataFrame(
                {
                    "conversion": conv_values[conv_index],
                    "model": model,
                    "channel": channel_values.get_level_values(0)[channel_index],
                    "campaign": channel_values.get_level_values(1)[channel_index],
                    "weight": summed,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def attribute_baseline(paths: pd.DataFrame, half_life_days: float) -> pd.DataFrame:
    """The same six models written the straightforward way, one pandas group per conversion;
    the benchmark's baseline and the tests' cross-check."""
    ordered = paths.reset_index(drop=True).reset_index().sort_values(["conversion", "touch_at", "index"])

    def path_weights(path: pd.DataFrame) -> pd.DataFrame:
        n = len(path)
        channels = list(zip(path["channel"], path["campaign"], strict=True))
        rows: dict[tuple[str, str, str], float] = {}

        def add(model: str, index: int, weight: float) -> None:
            key = (model, *channels[index])
            rows[key] = rows.get(key, 0.0) + weight

        add("first_touch", 0, 1.0)
        add("last_touch", n - 1, 1.0)
        non_direct = [i for i, (channel, _) in enumerate(channels) if channel != DIRECT]
        add("last_non_direct", non_direct[-1] if non_direct else n - 1, 1.0)
        for i in range(n):
            add("linear", i, 1.0 / n)
        ages = (path["converted_at"] - path["touch_at"]).dt.total_seconds().to_numpy() / 86_400
        decay = 2.0 ** (-(ages - ages.min()) / half_life_days)
        for i in range(n):
            add("time_decay", i, float(decay[i] / decay.sum()))
        for i in range(n):
            if n == 1:
                weight = 1.0
            elif n == 2:
                weight = 0.5
            else:
                weight = POSITION_ENDS if i in (0, n - 1) else (1 - 2 * POSITION_ENDS) / (n - 2)
            add("position_based", i, weight)
        return pd.DataFrame(
            [(m, c, k, w) for (m, c, k), w in rows.items()],
            columns=["model", "channel", "campaign", "weight"],
        )

    result = ordered.groupby("conversion", sort=False).apply(path_weights, include_groups=False)
    return result.reset_index(level=0).reset_index(drop=True)
