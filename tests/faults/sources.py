"""Every HTTP source as a case the fault harnesses can drive the same way: start its replay
server, build its client against a URL (the fault proxy's), sync into a store, and read back
the natural keys it wrote. A source that lands adds one case to HTTP_SOURCES."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hub.store.db import session_scope
from hub.store.models import Lead

# Client options that keep retry tests fast: small backoff, short timeouts.
FAST_HTTP: dict[str, Any] = {"backoff_factor": 0.01, "backoff_max_s": 0.05}


@dataclass
class SyncOutcome:
    stats: Any
    retries_used: int
    requests_made: int


@dataclass
class HttpSourceCase:
    name: str
    # JSON key of the records list in a page: the proxy reorders and repeats these.
    records_key: str
    # Starts the documented-format replay server with `n` records; yields its base URL.
    serve: Callable[[int], AbstractContextManager[str]]
    # Syncs from `url` into the store with HTTP timeout `timeout_s`; returns what it spent.
    sync: Callable[[str, str, float], SyncOutcome]
    # The natural keys the store holds for this source, and the keys the server has.
    stored_keys: Callable[[str], list[str]]
    expected_keys: Callable[[int], list[str]]


# ---------------------------------------------------------------- site leads API


def _site_leads(n: int) -> list[dict[str, Any]]:
    from tests.site.fake_site import make_leads

    leads = []
    for start in range(0, n, 600):  # make_leads covers 8:00 to 17:59 in one day
        chunk = make_leads(min(600, n - start))
        for lead in chunk:
            lead["id"] = f"L{start + int(lead['id'][1:]):05d}"
            lead["submitted_at"] = lead["submitted_at"].replace(
                "2026-11-20", f"2026-11-{1 + start // 600:02d}"
            )
        leads.extend(chunk)
    return leads


def _serve_site(n: int) -> AbstractContextManager[str]:
    from contextlib import contextmanager

    from tests.site.fake_site import FakeSite, serve_site

    @contextmanager
    def run() -> Iterator[str]:
        with serve_site(FakeSite(_site_leads(n), token="site-token", page_size_cap=25)) as site:
            yield site.url

    return run()


def _sync_site(database_url: str, url: str, timeout_s: float) -> SyncOutcome:
    from connectors.site import SiteLeadsApi
    from hub.ingest.site import sync_site_api

    api = SiteLeadsApi(url, "site-token", page_size=25, timeout_s=timeout_s, **FAST_HTTP)
    stats = sync_site_api(database_url, api, "RU")
    return SyncOutcome(stats, api.http.retries_used, api.http.requests_made)


def _stored_leads(source_system: str) -> Callable[[str], list[str]]:
    def stored(database_url: str) -> list[str]:
        with session_scope(database_url) as session:
            return list(
                session.scalars(
                    select(Lead.source_ref).where(Lead.source_system == source_system).order_by(Lead.id)
                )
            )

    return stored


SITE_API = HttpSourceCase(
    name="site_api",
    records_key="leads",
    serve=_serve_site,
    sync=_sync_site,
    stored_keys=_stored_leads("site_api"),
    expected_keys=lambda n: [lead["id"] for lead in _site_leads(n)],
)

HTTP_SOURCES: list[HttpSourceCase] = [SITE_API]
