"""Zadarma's PBX call statistics: a cloud PBX of the same shape as Twilio, so only what differs
lives here: the signed Authorization header, month-bounded time windows with skip/limit paging,
and legs grouped into calls by `pbx_call_id`.

As Zadarma documents it:
  GET {base}/v1/statistics/pbx/?start=Y-m-d H:i:s&end=Y-m-d H:i:s&skip=n&limit=n (limit <= 1000,
      start and end at most a month apart, times in the account's time zone)
  Authorization: <key>:base64(hex(hmac_sha1(secret, method + params + md5(params))))
      where method is the path and params the query string sorted by name (RFC 1738 encoding)
  200 {"status": "success", "stats": [{call_id, sip, callstart, clid, destination, disposition,
                                       seconds, is_recorded, pbx_call_id}, ...]}
      {"status": "error", "message": "..."} on a refused request."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import requests

from connectors.errors import CredentialError, PermanentSourceError, TransientSourceError
from connectors.http import HttpClient
from connectors.pbx import (
    MAX_REPEATED_PAGES,
    CallPage,
    CloudPbxSource,
    RejectedRecord,
    is_extension,
    merge_legs,
    parse_each,
)
from schemas.telephony import Call, Disposition, ZadarmaCall

DEFAULT_BASE_URL = "https://api.zadarma.com"
STATS_PATH = "/v1/statistics/pbx/"
RECORD_PATH = "/v1/pbx/record/request/"
MAX_PAGE = 1000
MAX_WINDOW = timedelta(days=28)  # "at most a month apart": the shortest month is safe
RECORDING_LINK_LIFETIME_S = 5_184_000  # the longest Zadarma allows (60 days)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Legs of one call (ring group, queue, transfer) are logged within this time of each other.
CALL_SETTLE = timedelta(minutes=10)
CREDENTIAL_SETTING = "HUB_TELEPHONY__ZADARMA__API_KEY and HUB_TELEPHONY__ZADARMA__API_SECRET"

DISPOSITIONS: dict[str, Disposition] = {
    "answered": "answered",
    "no answer": "missed",
    "cancel": "missed",
    "busy": "busy",
}


def sign(method: str, params_string: str, secret: str) -> str:
    """Zadarma's signature of a request: the path, its sorted query string and that string's MD5."""
    digest = hashlib.md5(params_string.encode()).hexdigest()
    mac = hmac.new(secret.encode(), (method + params_string + digest).encode(), hashlib.sha1)
    return base64.b64encode(mac.hexdigest().encode()).decode()


def query_string(params: dict[str, Any]) -> str:
    """The query string exactly as signed: sorted by name, spaces as '+' (PHP http_build_query)."""
    return urlencode(sorted((k, str(v)) for k, v in params.items()))


class ZadarmaAuth(requests.auth.AuthBase):
    """Signs every request (retries included) from its own path and query string."""

    def __init__(self, key: str, secret: str) -> None:
        self.key = key
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        request.headers["Authorization"] = f"{self.key}:{sign(parts.path, parts.query, self.secret)}"
        return request


class ZadarmaCalls(CloudPbxSource):
    provider = "zadarma"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timezone: str = "Europe/Moscow",
        page_size: int = MAX_PAGE,
        window: timedelta = timedelta(days=1),
        extension_max_digits: int = 5,
        fetch_recordings: bool = True,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        **http_options: Any,
    ) -> None:
        if not api_key or not api_secret:
            raise PermanentSourceError(f"Zadarma is not configured: set {CREDENTIAL_SETTING}")
        self.zone = ZoneInfo(timezone)
        self.page_size = min(page_size, MAX_PAGE)
        self.window = min(window, MAX_WINDOW)
        self.extension_max_digits = extension_max_digits
        self.fetch_recordings = fetch_recordings
        self.http = HttpClient(
            base_url,
            source="Zadarma",
            credential_setting=CREDENTIAL_SETTING,
            auth=ZadarmaAuth(api_key, api_secret),
            timeout_s=timeout_s,
            verify_tls=verify_tls,
            **http_options,
        )

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        # The query is built here, not by requests, so that what is sent is what was signed.
        body = self.http.get_json(f"{path}?{query_string(params)}")
        if not isinstance(body, dict):
            raise PermanentSourceError(f"Zadarma answered {path} with {type(body).__name__}, not an object")
        if body.get("status") == "error":
            message = str(body.get("message", ""))
            if "authoriz" in message.lower() or "sign" in message.lower():
                raise CredentialError(
                    f"Zadarma refused the credentials ({message}): check {CREDENTIAL_SETTING}"
                )
            raise PermanentSourceError(f"Zadarma refused {path}: {message}")
        return body

    def raw_pages(self, since: datetime, until: datetime | None) -> Iterator[list[Any]]:
        # The last minutes are left to the next run (its lookback re-reads them): a call's
        # later legs may not be logged yet.
        end_all = until or datetime.now(self.zone) - CALL_SETTLE
        start = since
        while start < end_all:
            end = min(start + self.window, end_all)
            records = self._window_records(start, end)
            if end < end_all:
                # A call whose legs reach the window's last minutes may go on past it: its legs
                # are read again with the next window, which starts at its first leg.
                records, carried_from = _hold_back_late_calls(
                    records, end.astimezone(self.zone) - CALL_SETTLE
                )
                start = (
                    max(carried_from.replace(tzinfo=self.zone), end - self.window / 2)
                    if carried_from
                    else end
                )
            else:
                start = end
            yield records

    def _window_records(self, start: datetime, end: datetime) -> list[Any]:
        """Every leg of a window, so that legs of one call on different pages are grouped."""
        records: list[Any] = []
        seen: set[str] = set()
        stale = 0
        skip = 0
        while True:
            params = {
                "start": start.astimezone(self.zone).strftime(TIME_FORMAT),
                "end": end.astimezone(self.zone).strftime(TIME_FORMAT),
                "skip": skip,
                "limit": self.page_size,
            }
            stats = self._get(STATS_PATH, params).get("stats")
            if not isinstance(stats, list):
                raise PermanentSourceError("Zadarma answered the statistics request without a 'stats' list")
            fresh = [r for r in stats if not (isinstance(r, dict) and _leg_key(r) in seen)]
            seen.update(_leg_key(r) for r in fresh if isinstance(r, dict))
            records.extend(fresh)
            if len(stats) < self.page_size:
                return records
            stale = stale + 1 if not fresh else 0
            if stale >= MAX_REPEATED_PAGES:
                raise TransientSourceError(
                    f"Zadarma: {stale} pages in a row repeated legs already read; the API ignores 'skip'"
                )
            skip += len(stats)

    def to_calls(self, records: list[Any], page: CallPage) -> list[Call]:
        legs: list[ZadarmaCall] = parse_each(records, ZadarmaCall.model_validate, page, _ref_of)
        by_call: dict[str, list[Call]] = {}
        for leg in legs:
            try:
                call = self._leg_to_call(leg)
            except ValueError as exc:
                page.rejected.append(RejectedRecord(leg.model_dump(), exc, leg.pbx_call_id))
                continue
            by_call.setdefault(call.call_id, []).append(call)
        calls = [merge_legs(group) for group in by_call.values()]
        page.skipped_legs += sum(len(group) - 1 for group in by_call.values())
        if self.fetch_recordings:
            recorded = {leg.pbx_call_id for leg in legs if leg.is_recorded}
            calls = [
                c.model_copy(update={"recording_url": self._recording_link(c.call_id)})
                if c.call_id in recorded and c.disposition == "answered"
                else c
                for c in calls
            ]
        return calls

    def _leg_to_call(self, leg: ZadarmaCall) -> Call:
        try:
            local = datetime.strptime(leg.callstart.strip(), TIME_FORMAT)
        except ValueError:
            raise ValueError(f"callstart {leg.callstart!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
        started = local.replace(tzinfo=self.zone)
        disposition = DISPOSITIONS.get(leg.disposition.strip().lower(), "failed")
        if leg.pbx_call_id.startswith("in_"):
            inbound = True
        elif leg.pbx_call_id.startswith("out_"):
            inbound = False
        else:
            inbound = not is_extension(leg.clid, self.extension_max_digits)
        return Call(
            provider=self.provider,
            call_id=leg.pbx_call_id,
            direction="inbound" if inbound else "outbound",
            caller=leg.clid,
            callee=leg.destination,
            started_at=started,
            duration_s=leg.seconds,
            talk_s=leg.seconds if disposition == "answered" else 0,
            disposition=disposition,
            provider_status=leg.disposition,
            extension=leg.sip or None,
            dialled_number=leg.destination if inbound and leg.destination else None,
        )

    def _recording_link(self, pbx_call_id: str) -> str | None:
        try:
            body = self._get(RECORD_PATH, {"pbx_call_id": pbx_call_id, "lifetime": RECORDING_LINK_LIFETIME_S})
        except PermanentSourceError as exc:
            if isinstance(exc, CredentialError):
                raise
            return None  # recording removed or not yet stored: the call itself still counts
        link = body.get("link") or (body.get("links") or [None])[0]
        return str(link) if link else None


def _hold_back_late_calls(records: list[Any], tail_start: datetime) -> tuple[list[Any], datetime | None]:
    """The records without the calls that have a leg at or after `tail_start` (local time),
    and the first leg's start of those held back."""
    tail = tail_start.strftime(TIME_FORMAT)  # "Y-m-d H:M:S" compares in time order
    late = {
        r.get("pbx_call_id")
        for r in records
        if isinstance(r, dict) and isinstance(r.get("callstart"), str) and r["callstart"] >= tail
    }
    if not late:
        return records, None
    kept = [r for r in records if not (isinstance(r, dict) and r.get("pbx_call_id") in late)]
    starts = [r["callstart"] for r in records if isinstance(r, dict) and r.get("pbx_call_id") in late]
    try:
        first = datetime.strptime(min(starts), TIME_FORMAT)
    except ValueError:
        return records, None  # unreadable times: left to the parser to reject
    return kept, first


def _leg_key(raw: dict[str, Any]) -> str:
    return f"{raw.get('pbx_call_id')}/{raw.get('call_id')}"


def _ref_of(raw: dict[str, Any]) -> str | None:
    value = raw.get("pbx_call_id") or raw.get("call_id")
    return str(value)[:300] if value is not None else None
