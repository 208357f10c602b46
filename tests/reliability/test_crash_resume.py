"""Crash and resume: the whole graph (every source present in the demo) is SIGKILLed at SQL
statements and COMMITs inside every asset — several times in a row in the same store — then
rerun; the store must equal clean runs': nothing missing, nothing doubled, cursors the same."""

from __future__ import annotations

import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest

from tests.faults.crash import DemoWorld, GraphRunner, KillPoint, build_demo_world
from tests.faults.store_compare import image_differences, store_image

TODAY = date(2026, 11, 20)
CHAINS = 8  # stores, each killed KILLS_PER_CHAIN times in a row, then run to the end
KILLS_PER_CHAIN = 4
# Runs after which another run changes nothing (test_one_clean_run_reaches_a_fixed_point).
FIXED_POINT_RUNS = 1
SEED = int(os.environ.get("HUB_CRASH_SEED", "20261120"))


@pytest.fixture
def world(tmp_path: Path) -> DemoWorld:
    # Routing that depends on who is on shift right now would differ between two honest runs.
    return build_demo_world(tmp_path, TODAY, {"HUB_ROUTING__REQUIRE_SHIFT": "false"})


def plan_kills(first_run: list[str], rerun: list[str], rng: random.Random) -> list[list[KillPoint]]:
    """CHAINS x KILLS_PER_CHAIN kill points, every asset hit at least once. A chain's first
    kill may fall anywhere in an asset's first-run work; the later ones, made in reruns,
    within what the asset does even with nothing new to do."""
    first_counts, rerun_counts = Counter(first_run), Counter(rerun)
    assets = sorted(first_counts)
    rng.shuffle(assets)
    # Assets idle in a rerun can only be killed in a chain's first run: deal those first.
    assets.sort(key=lambda asset: rerun_counts[asset] > 0)
    busy_in_rerun = sorted(a for a in assets if rerun_counts[a])
    plans: list[list[KillPoint]] = [[] for _ in range(CHAINS)]
    for position in range(KILLS_PER_CHAIN):
        for chain in plans:
            asset = assets.pop(0) if assets else rng.choice(busy_in_rerun)
            limit = first_counts[asset] if position == 0 else rerun_counts[asset]
            if not limit:  # idle in a rerun: kill this rerun in another asset
                asset = rng.choice(busy_in_rerun)
                limit = rerun_counts[asset]
            chain.append(KillPoint(asset, rng.randint(1, limit)))
    return plans


def _run_chain(runner: GraphRunner, world: DemoWorld, name: str, kills: list[KillPoint]) -> dict:
    store_url, folder = world.copy_store(name)
    killed: list[KillPoint] = []
    for kill in kills:
        outcome = runner.run_graph(store_url, folder, kill)
        if outcome.killed:
            killed.append(kill)
        else:  # the asset had less to do in this rerun: it ended, a clean resume already
            assert outcome.returncode == 0, outcome.output
    for _ in range(FIXED_POINT_RUNS):
        final = runner.run_graph(store_url, folder)
        assert final.returncode == 0, final.output
    return {"store_url": store_url, "killed": killed}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkill_anywhere_then_rerun_equals_clean_runs(world: DemoWorld) -> None:
    rng = random.Random(SEED)
    with world.runner() as first, world.runner() as second:
        clean_url, clean_folder = world.copy_store("clean")
        clean = first.run_graph(clean_url, clean_folder)
        assert clean.returncode == 0, clean.output
        for _ in range(FIXED_POINT_RUNS - 1):
            assert first.run_graph(clean_url, clean_folder).returncode == 0
        expected = store_image(clean_url, world.ready_at)
        assert sum(sum(rows.values()) for rows in expected.values()) > 100  # a real graph's worth
        idle = first.run_graph(clean_url, clean_folder)  # the baseline is a fixed point
        assert idle.returncode == 0, idle.output
        assert image_differences(expected, store_image(clean_url, world.ready_at)) == {}

        plans = plan_kills(clean.trace, idle.trace, rng)
        jobs = [(f"chain{n}", kills) for n, kills in enumerate(plans)]

        def run_half(runner: GraphRunner, half: list[tuple[str, list[KillPoint]]]) -> list[dict]:
            return [_run_chain(runner, world, name, kills) for name, kills in half]

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(run_half, first, jobs[0::2]), pool.submit(run_half, second, jobs[1::2])]
            chains = [chain for future in futures for chain in future.result()]

    kills = [kill for chain in chains for kill in chain["killed"]]
    by_asset = Counter(kill.asset for kill in kills)
    print(f"\n{len(kills)} SIGKILLs in {len(chains)} chains; by asset: {dict(sorted(by_asset.items()))}")
    assert len(kills) >= 30
    assert set(by_asset) == set(clean.trace)  # every asset of the graph was killed at least once
    for chain in chains:
        differences = image_differences(expected, store_image(chain["store_url"], world.ready_at))
        assert differences == {}, f"after kills at {chain['killed']}: {differences}"


@pytest.mark.slow
def test_one_clean_run_reaches_a_fixed_point(world: DemoWorld) -> None:
    with world.runner() as runner:
        store_url, folder = world.copy_store("once")
        assert runner.run_graph(store_url, folder).returncode == 0
        after_one = store_image(store_url, world.ready_at)
        assert runner.run_graph(store_url, folder).returncode == 0
    assert image_differences(after_one, store_image(store_url, world.ready_at)) == {}
