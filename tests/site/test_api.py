"""The site's leads API against a local server that pages, throttles and fails."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from connectors.errors import CredentialError, TransientSourceError
from connectors.site import SiteLeadsApi
from hub.ingest.site import API_SOURCE, sync_site_api
from hub.store.cursors import load_cursor
from hub.store.db import session_scope
from hub.store.models import Lead
from tests.site.fake_site import FakeSite, make_leads, serve_site

FAST = {"backoff_factor": 0.01, "backoff_max_s": 0.05}


def _api(site: FakeSite, **kw) -> SiteLeadsApi:  # type: ignore[no-untyped-def]
    return SiteLeadsApi(
        site.url,
        site.token,
        page_size=kw.pop("page_size", 20),
        timeout_s=kw.pop("timeout_s", 5),
        **{**FAST, **kw},
    )


def _lead_refs(url: str) -> list[str]:
    with session_scope(url) as session:
        return sorted(session.scalars(select(Lead.source_ref)))


def test_pages_are_followed_and_each_lead_written_once(store_url: str) -> None:
    with serve_site(FakeSite(make_leads(95))) as site:
        stats = sync_site_api(store_url, _api(site), "RU")
        again = sync_site_api(store_url, _api(site), "RU")
    assert stats.written == 95 and stats.extra["pages"] == 5
    # The second sync asks from the high-water mark: only the boundary lead comes back, unchanged.
    assert again.written == 0 and again.rows_in == 1
    assert _lead_refs(store_url) == sorted(f"L{n:04d}" for n in range(95))


def test_throttling_errors_and_truncated_bodies_are_survived(sqlite_store: str) -> None:
    site = FakeSite(make_leads(60))
    site.faults = ["429", "503", "truncated", "500", "502", "timeout"]
    with serve_site(site):
        api = _api(site, timeout_s=0.5)
        stats = sync_site_api(sqlite_store, api, "RU")
    assert stats.written == 60
    assert len(_lead_refs(sqlite_store)) == 60
    assert api.http.retries_used >= 6  # every fault cost a retry, and the budget is reported


def test_retry_after_is_honoured(sqlite_store: str) -> None:
    import time

    site = FakeSite(make_leads(5))
    site.faults = ["429"]
    with serve_site(site):
        started = time.monotonic()
        sync_site_api(sqlite_store, _api(site), "RU")
    assert time.monotonic() - started >= 1.0  # the server asked for one second


def test_bad_token_fails_at_once_naming_the_setting(sqlite_store: str) -> None:
    with serve_site(FakeSite(make_leads(5))) as site:
        api = SiteLeadsApi(site.url, "wrong-token", **FAST)
        with pytest.raises(CredentialError, match="HUB_SITE__API_TOKEN"):
            sync_site_api(sqlite_store, api, "RU")
        assert len(site.requests) == 1  # no retries on 401


def test_login_page_instead_of_json_is_named(sqlite_store: str) -> None:
    site = FakeSite(make_leads(5))
    site.faults = ["html"]
    with serve_site(site), pytest.raises(CredentialError, match="HTML page"):
        sync_site_api(sqlite_store, _api(site), "RU")


def test_server_down_for_good_is_a_transient_error_and_nothing_is_lost(sqlite_store: str) -> None:
    site = FakeSite(make_leads(50))
    with serve_site(site):
        sync_site_api(sqlite_store, _api(site, page_size=10), "RU")
        site.leads.extend(make_leads(80)[50:])
        site.faults = ["", "503"] + ["503"] * 20  # the second page keeps failing
        with pytest.raises(TransientSourceError, match="HTTP 503"):
            sync_site_api(sqlite_store, _api(site, page_size=10, max_retries=2), "RU")
        with session_scope(sqlite_store) as session:
            cursor = load_cursor(session, API_SOURCE)
        assert cursor.get("page_cursor")  # resumes mid-run from the page that failed
        site.faults = []
        sync_site_api(sqlite_store, _api(site, page_size=10), "RU")
    with session_scope(sqlite_store) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 80
        assert "page_cursor" not in load_cursor(session, API_SOURCE)


def test_invalid_records_are_quarantined_and_the_run_goes_on(sqlite_store: str) -> None:
    from hub.store.models import QuarantineRecord

    leads = make_leads(10)
    leads[3]["phone"], leads[3]["email"] = "12", "not-an-email"
    leads[5].pop("submitted_at")
    leads[5]["submitted_at"] = "not a date"
    with serve_site(FakeSite(leads)) as site:
        stats = sync_site_api(sqlite_store, _api(site), "RU")
    assert stats.written == 8 and stats.quarantined == 2
    with session_scope(sqlite_store) as session:
        reasons = {q.source_ref: q.error for q in session.scalars(select(QuarantineRecord))}
    assert "no usable contact" in reasons["L0003"]
    assert "submitted_at" in reasons["L0005"]
