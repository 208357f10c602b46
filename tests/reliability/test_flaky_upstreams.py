"""Flaky upstreams: every HTTP source read through the fault proxy (429 with Retry-After,
5xx, stalls, resets, cut and invalid bodies, reordered and repeated pages at a 25% rate)
still delivers every record exactly once, with a bounded retry budget that is reported."""

from __future__ import annotations

import pytest

from connectors.errors import TransientSourceError
from hub.store.cursors import load_cursor
from hub.store.db import session_scope
from tests.faults.http_proxy import FaultPlan, fault_proxy
from tests.faults.sources import HTTP_SOURCES, HttpSourceCase

# Faults that make the client ask again; reorder and repeat are answered normally.
COSTS_A_RETRY = {
    "429",
    "500",
    "502",
    "503",
    "reset",
    "timeout",
    "truncated",
    "cut_connection",
    "invalid_json",
}
RECORDS = 1000
CLIENT_TIMEOUT_S = 0.3

CASES = [pytest.param(case, id=case.name) for case in HTTP_SOURCES]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", CASES)
def test_every_record_once_through_faults(case: HttpSourceCase, seed: int, sqlite_store: str) -> None:
    plan = FaultPlan(
        rate=0.25,
        seed=seed,
        kinds=case.fault_kinds,
        records_key=case.records_key,
        stall_s=2 * CLIENT_TIMEOUT_S,
    )
    with case.serve(RECORDS) as upstream, fault_proxy(upstream, plan) as proxy:
        outcome = case.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
    stored = case.stored_keys(sqlite_store)
    assert sorted(stored) == sorted(case.expected_keys(RECORDS))  # nothing missing
    assert len(stored) == len(set(stored))  # nothing doubled
    # Each fault cost exactly one retry: the budget is what the faults demanded, no more.
    retry_faults = sum(n for kind, n in proxy.log.faults.items() if kind in COSTS_A_RETRY)
    # Every fault costs a retry; under load a slow but unfaulted answer can also time out once or
    # twice (the tests' client timeout is short), so the budget is bounded rather than exact.
    assert retry_faults > 0 and retry_faults <= outcome.retries_used <= retry_faults + 2
    assert outcome.stats.extra["http_retries"] == outcome.retries_used  # reported with the run
    assert 0.2 <= sum(proxy.log.faults.values()) / proxy.log.requests <= 0.3


@pytest.mark.parametrize("case", CASES)
def test_every_fault_kind_is_survived_in_one_run(case: HttpSourceCase, sqlite_store: str) -> None:
    plan = FaultPlan(
        rate=0.3, seed=11, kinds=case.fault_kinds, records_key=case.records_key, stall_s=2 * CLIENT_TIMEOUT_S
    )
    with case.serve(RECORDS) as upstream, fault_proxy(upstream, plan) as proxy:
        case.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
    assert set(proxy.log.faults) == set(case.fault_kinds)
    assert sorted(case.stored_keys(sqlite_store)) == sorted(case.expected_keys(RECORDS))


@pytest.mark.parametrize("case", CASES)
def test_an_upstream_down_for_good_costs_a_bounded_budget_then_resumes(
    case: HttpSourceCase, sqlite_store: str
) -> None:
    """Every request failing: the client gives up after its per-request budget with a transient
    error; the rerun once the upstream is back completes without loss or repeats."""
    with case.serve(RECORDS) as upstream:
        with fault_proxy(upstream, FaultPlan(rate=1.0, kinds=("503",))) as proxy:
            with pytest.raises(TransientSourceError, match="503"):
                case.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
            first_failure = proxy.log.requests
        # One request plus max_retries (6) retries: the budget per request is bounded.
        assert first_failure == 7
        # Up for a while, then down again mid-run: part is written, the cursor says where.
        with fault_proxy(upstream, FaultPlan(rate=0.0)) as healthy:
            outcome = case.sync(sqlite_store, healthy.url, CLIENT_TIMEOUT_S)
        assert outcome.retries_used == 0
    stored = case.stored_keys(sqlite_store)
    assert sorted(stored) == sorted(case.expected_keys(RECORDS)) and len(stored) == len(set(stored))


def test_site_mid_run_outage_resumes_from_the_saved_page(sqlite_store: str) -> None:
    """The site API fails for good on page 5: pages 1-4 are stored with their cursor, and the
    next sync starts from page 5, not from the beginning."""
    from tests.faults.sources import SITE_API

    with SITE_API.serve(RECORDS) as upstream:
        plan = FaultPlan(rate=0.0)
        with fault_proxy(upstream, plan) as proxy:
            import threading

            def fail_after_four_pages() -> None:
                while proxy.log.requests < 4:
                    threading.Event().wait(0.005)
                plan.rate, plan.kinds = 1.0, ("502",)

            watcher = threading.Thread(target=fail_after_four_pages, daemon=True)
            watcher.start()
            with pytest.raises(TransientSourceError):
                SITE_API.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
        with session_scope(sqlite_store) as session:
            cursor = load_cursor(session, "site_api")
        written_before = len(SITE_API.stored_keys(sqlite_store))
        assert cursor.get("page_cursor") and written_before == 4 * 25
        with fault_proxy(upstream, FaultPlan(rate=0.0)) as healthy:
            outcome = SITE_API.sync(sqlite_store, healthy.url, CLIENT_TIMEOUT_S)
    assert outcome.stats.rows_in == RECORDS - written_before  # no page read twice
    assert sorted(SITE_API.stored_keys(sqlite_store)) == sorted(SITE_API.expected_keys(RECORDS))


@pytest.mark.parametrize("case", CASES)
def test_the_retry_budget_spent_is_reported_with_the_run(case: HttpSourceCase, sqlite_store: str) -> None:
    plan = FaultPlan(rate=0.25, seed=4, kinds=("503", "429"), records_key=case.records_key)
    with case.serve(100) as upstream, fault_proxy(upstream, plan) as proxy:
        outcome = case.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
    assert sum(proxy.log.faults.values()) > 0
    assert outcome.stats.extra.get("http_retries") == outcome.retries_used


def test_onec_page_with_repeated_rows_skips_none(sqlite_store: str) -> None:
    from tests.faults.sources import ONEC_ODATA

    plan = FaultPlan(rate=0.25, seed=3, kinds=("repeat",), records_key=ONEC_ODATA.records_key)
    with ONEC_ODATA.serve(RECORDS) as upstream, fault_proxy(upstream, plan) as proxy:
        ONEC_ODATA.sync(sqlite_store, proxy.url, CLIENT_TIMEOUT_S)
    assert sorted(ONEC_ODATA.stored_keys(sqlite_store)) == sorted(ONEC_ODATA.expected_keys(RECORDS))
