"""Local HTTP servers that speak Twilio's Calls API and Zadarma's PBX statistics API as their
documentation describes them (auth, paging, filters), and fail on demand: 429 with
Retry-After, 5xx, a stalled answer, a truncated body, a page served twice."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

from tests.local_server import local_server

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-test-token"
ZADARMA_KEY = "zadarma-key"
ZADARMA_SECRET = "zadarma-secret"


@dataclass
class FakeApi:
    """State shared with the handler: the data it serves, the faults to inject (consumed in
    order, one per request), and a log of what was asked."""

    faults: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None


@dataclass
class TwilioApi(FakeApi):
    calls: list[dict[str, Any]] = field(default_factory=list)
    repeat_page: int | None = None  # this page index is served twice in a row


@dataclass
class ZadarmaApi(FakeApi):
    legs: list[dict[str, Any]] = field(default_factory=list)
    timezone_offset_h: int = 3  # callstart is in the account's zone (Moscow)
    ignore_skip: bool = False


def twilio_call(
    sid: str,
    start: datetime,
    *,
    frm: str,
    to: str,
    status: str = "completed",
    direction: str = "inbound",
    duration: int = 60,
    parent: str | None = None,
) -> dict[str, Any]:
    """A call record as Twilio's Calls list returns it."""
    live = status in ("queued", "ringing", "in-progress")
    return {
        "sid": sid,
        "account_sid": TWILIO_SID,
        "parent_call_sid": parent,
        "from": frm,
        "from_formatted": frm,
        "to": to,
        "to_formatted": to,
        "status": status,
        "direction": direction,
        "start_time": format_datetime(start.astimezone(UTC), usegmt=True),
        "end_time": None if live else format_datetime((start + timedelta(seconds=duration)), usegmt=True),
        "duration": None if live else str(duration if status == "completed" else 0),
        "price": None,
        "price_unit": "USD",
        "answered_by": None,
        "caller_name": None,
        "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}.json",
        "subresource_uris": {
            "recordings": f"/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}/Recordings.json",
            "notifications": f"/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}/Notifications.json",
        },
    }


def zadarma_leg(
    pbx_call_id: str,
    call_id: str,
    start_local: datetime,
    *,
    clid: str,
    destination: str,
    sip: str = "",
    disposition: str = "answered",
    seconds: int = 60,
    recorded: bool = False,
) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "sip": sip,
        "callstart": start_local.strftime("%Y-%m-%d %H:%M:%S"),
        "clid": clid,
        "destination": destination,
        "disposition": disposition,
        "seconds": seconds,
        "is_recorded": "true" if recorded else "false",
        "pbx_call_id": pbx_call_id,
    }


def zadarma_expected_signature(path: str, query: str, secret: str) -> str:
    """Zadarma's documented signature, computed independently of the connector: the request's
    parameters sorted by name and encoded like PHP's http_build_query."""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    params = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    md5 = hashlib.md5(params.encode()).hexdigest()
    digest = hmac.new(secret.encode(), (path + params + md5).encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode()).decode()


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, cut: bool = False) -> None:
        raw = json.dumps(body).encode()
        if cut:
            raw = raw[: len(raw) // 2]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        # The client may have given up on a stalled answer, as a real server sees it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(raw)

    def do_GET(self) -> None:
        api = self.api
        api.requests.append(self.path)
        fault = api.next_fault()
        if fault == "429":
            return self._send(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"})
        if fault == "500":
            return self._send(500, {"message": "internal error"})
        if fault == "503":
            return self._send(503, {"message": "unavailable"})
        if fault == "stall":
            time.sleep(1.5)  # longer than the client's timeout in the tests
        if fault == "401":
            return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
        self.handle_api(cut=fault == "truncate")

    def handle_api(self, cut: bool) -> None:
        raise NotImplementedError


class _TwilioHandler(_Handler):
    api: TwilioApi

    def handle_api(self, cut: bool) -> None:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        base = f"/2010-04-01/Accounts/{TWILIO_SID}"
        if url.path.startswith(base + "/Calls/") and url.path.endswith("/Recordings.json"):
            sid = url.path.split("/Calls/")[1].split("/")[0]
            rec = f"RE{sid[2:]}"
            return self._send(
                200,
                {"recordings": [{"sid": rec, "call_sid": sid, "uri": f"{base}/Recordings/{rec}.json"}]},
                cut=cut,
            )
        if url.path != base + "/Calls.json":
            return self._send(404, {"code": 20404, "message": "not found"})
        since = query.get("StartTime>=")
        # Newest first, as Twilio lists them; broken records (the tests' own) stay in the list.
        calls = sorted(self.api.calls, key=_start_key, reverse=True)
        if since:
            calls = [c for c in calls if _start_key(c) == 0.0 or _start_key(c) >= _day_start(since)]
        size = int(query.get("PageSize", 50))
        page = int(query.get("Page", 0))
        served, next_page, token = page, page + 1, f"PA{page + 1}"
        if self.api.repeat_page is not None and page == self.api.repeat_page + 1:
            # The previous page again; its "next" is this page under a new token.
            served, next_page, token = page - 1, page, f"PA{page}again"
            self.api.repeat_page = None
        chunk = calls[served * size : (served + 1) * size]
        more = (served + 1) * size < len(calls)
        filters = f"&StartTime%3E%3D={since}" if since else ""
        next_uri = (
            f"{base}/Calls.json?PageSize={size}&Page={next_page}&PageToken={token}{filters}" if more else None
        )
        body = {"calls": chunk, "page": page, "page_size": size, "next_page_uri": next_uri, "uri": self.path}
        self._send(200, body, cut=cut)


def _start_key(call: Any) -> float:
    try:
        return parsedate_to_datetime(call["start_time"]).timestamp()
    except (TypeError, ValueError, KeyError):
        return 0.0


def _day_start(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


class _ZadarmaHandler(_Handler):
    api: ZadarmaApi

    def handle_api(self, cut: bool) -> None:
        url = urlsplit(self.path)
        key, _, signature = (self.headers.get("Authorization") or "").partition(":")
        if key != ZADARMA_KEY or signature != zadarma_expected_signature(url.path, url.query, ZADARMA_SECRET):
            return self._send(401, {"status": "error", "message": "Not authorized"})
        query = dict(parse_qsl(url.query))
        if url.path == "/v1/pbx/record/request/":
            link = f"https://api.zadarma.com/v1/pbx/record/download/{query['pbx_call_id']}.mp3"
            return self._send(
                200, {"status": "success", "link": link, "lifetime_till": "2030-01-01 00:00:00"}
            )
        if url.path != "/v1/statistics/pbx/":
            return self._send(404, {"status": "error", "message": "Method not found"})
        start = datetime.strptime(query["start"], "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(query["end"], "%Y-%m-%d %H:%M:%S")
        limit = int(query.get("limit", 1000))
        skip = 0 if self.api.ignore_skip else int(query.get("skip", 0))
        if end - start > timedelta(days=31) or limit > 1000:
            return self._send(
                200, {"status": "error", "message": "Period more than one month or limit > 1000"}
            )
        legs = [
            leg
            for leg in self.api.legs
            if start <= datetime.strptime(leg["callstart"], "%Y-%m-%d %H:%M:%S") <= end
        ]
        legs.sort(key=lambda leg: (leg["callstart"], leg["call_id"]))
        body = {
            "status": "success",
            "start": query["start"],
            "end": query["end"],
            "version": 2,
            "stats": legs[skip : skip + limit],
        }
        self._send(200, body, cut=cut)


@contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    handler_cls = _TwilioHandler if isinstance(api, TwilioApi) else _ZadarmaHandler
    handler = type("Handler", (handler_cls,), {"api": api})
    with local_server(handler) as server:
        yield server.url
