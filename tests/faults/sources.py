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
from tests.faults.http_proxy import ALL_FAULTS

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
    # Faults the source is tested against (all, unless a known bug is pinned by an xfail test).
    fault_kinds: tuple[str, ...] = ALL_FAULTS


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


# ---------------------------------------------------------------- Twilio Calls list


def _twilio_calls(n: int) -> list[dict[str, Any]]:
    from datetime import UTC, datetime, timedelta

    from tests.telephony.conftest import OFFICE_LINE
    from tests.telephony.servers import twilio_call

    start = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    return [
        twilio_call(f"CA{i:032d}", start + timedelta(minutes=i), frm=f"+7926{i:07d}", to=OFFICE_LINE)
        for i in range(n)
    ]


def _serve_twilio(n: int) -> AbstractContextManager[str]:
    from tests.telephony.servers import TwilioApi, serve

    return serve(TwilioApi(calls=_twilio_calls(n)))


def _sync_twilio(database_url: str, url: str, timeout_s: float) -> SyncOutcome:
    from datetime import UTC, datetime

    from connectors.twilio import TwilioCalls
    from hub.ingest.telephony import sync_calls
    from tests.telephony.conftest import seed_telephony_crm, telephony_settings
    from tests.telephony.servers import TWILIO_SID, TWILIO_TOKEN

    with session_scope(database_url) as session:
        seeded = _has_reps(session)
    if not seeded:  # reps and tracking numbers the calls are matched against
        seed_telephony_crm(database_url)
    source = TwilioCalls(
        TWILIO_SID,
        TWILIO_TOKEN,
        base_url=url,
        page_size=25,
        fetch_recordings=False,
        timeout_s=timeout_s,
        **FAST_HTTP,
    )
    now = datetime(2026, 3, 6, 0, 0, tzinfo=UTC)
    stats = sync_calls(database_url, source, telephony_settings(initial_days=3), "RU", now=now)
    return SyncOutcome(stats, source.http.retries_used, source.http.requests_made)


def _has_reps(session: Any) -> bool:
    from hub.store.models import Rep

    return session.scalar(select(Rep.id).limit(1)) is not None


def _stored_activities(source_system: str) -> Callable[[str], list[str]]:
    def stored(database_url: str) -> list[str]:
        from hub.store.models import Activity

        with session_scope(database_url) as session:
            return list(
                session.scalars(
                    select(Activity.source_ref)
                    .where(Activity.source_system == source_system)
                    .order_by(Activity.id)
                )
            )

    return stored


TWILIO = HttpSourceCase(
    name="twilio",
    records_key="calls",
    serve=_serve_twilio,
    sync=_sync_twilio,
    stored_keys=_stored_activities("twilio"),
    expected_keys=lambda n: [call["sid"] for call in _twilio_calls(n)],
)


# ---------------------------------------------------------------- 1C OData (invoices)


def _onec_invoices(n: int) -> list[dict[str, Any]]:
    from hub.demo.accounting import guid

    return [
        {
            "Ref_Key": guid(2, i),
            "Number": f"0000-{i:06d}",
            "Date": f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00",
            "Posted": True,
            "DeletionMark": False,
            "Контрагент_Key": guid(1, 1),
            "СуммаДокумента": 100.0 + i,
            "СрокОплаты": "2024-04-30T00:00:00",
        }
        for i in range(1, n + 1)
    ]


def _serve_onec(n: int) -> AbstractContextManager[str]:
    from contextlib import contextmanager

    from hub.demo.accounting import guid
    from tests.accounting.fake_onec import FakeOneC, serve

    party = {
        "Ref_Key": guid(1, 1),
        "Description": "Ромашка",
        "ИНН": "7707083893",
        "КПП": "",
        "IsFolder": False,
    }

    @contextmanager
    def run() -> Iterator[str]:
        from connectors.onec_odata import COUNTERPARTIES, INVOICES, PAYMENTS

        data = {COUNTERPARTIES: [party], INVOICES: _onec_invoices(n), PAYMENTS: []}
        with serve(FakeOneC(data)) as fake:
            yield fake.url

    return run()


def _sync_onec(database_url: str, url: str, timeout_s: float) -> SyncOutcome:
    from connectors.onec_odata import OneCOData
    from hub.ingest.accounting import sync_odata

    source = OneCOData(url, "odata", "secret", page_size=25, timeout_s=timeout_s, **FAST_HTTP)
    stats = sync_odata(database_url, source, "2024-01-01", kinds=("invoices",))
    return SyncOutcome(stats, source.http.retries_used, source.http.requests_made)


def _stored_invoices(database_url: str) -> list[str]:
    from hub.store.models import Invoice

    with session_scope(database_url) as session:
        return list(session.scalars(select(Invoice.source_ref).order_by(Invoice.id)))


ONEC_ODATA = HttpSourceCase(
    name="onec_odata",
    records_key="value",
    serve=_serve_onec,
    sync=_sync_onec,
    stored_keys=_stored_invoices,
    expected_keys=lambda n: [row["Ref_Key"] for row in _onec_invoices(n)],
)

HTTP_SOURCES: list[HttpSourceCase] = [SITE_API, TWILIO, ONEC_ODATA]
