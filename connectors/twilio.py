"""Twilio's call log: the Calls list of an account, paged by `next_page_uri`, and each answered
call's recording; or a recording of those API answers replayed from a file (the demo).

As Twilio documents it:
  GET {base}/2010-04-01/Accounts/{AccountSid}/Calls.json?StartTime>=YYYY-MM-DD&PageSize=n
  HTTP Basic: AccountSid (or API key SID) and auth token
  200 {"calls": [{sid, parent_call_sid, from, to, status, direction, start_time, duration,
                  subresource_uris: {recordings: ...}}, ...], "next_page_uri": "/2010-...&PageToken=..." | null}
Newest calls come first; dates are RFC 2822 in GMT; `duration` is a string of seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from connectors.errors import PermanentSourceError
from connectors.http import HttpClient
from connectors.pbx import CallPage, CloudPbxSource, RejectedRecord, parse_each
from schemas.telephony import Call, Disposition, TwilioCall

DEFAULT_BASE_URL = "https://api.twilio.com"
API_VERSION = "2010-04-01"

FINAL_STATUSES: dict[str, Disposition] = {
    "completed": "answered",
    "no-answer": "missed",
    "canceled": "missed",
    "busy": "busy",
    "failed": "failed",
}
PENDING_STATUSES = ("queued", "ringing", "in-progress")
INBOUND_DIRECTIONS = ("inbound", "trunking-terminating")


def parse_twilio_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise ValueError(f"start_time {value!r} is not an RFC 2822 date") from None
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"start_time {value!r} has no time zone")
    return parsed.astimezone(UTC)


class TwilioCalls(CloudPbxSource):
    """The Calls list of one Twilio account."""

    provider = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        page_size: int = 100,
        fetch_recordings: bool = True,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        **http_options: Any,
    ) -> None:
        if not account_sid or not auth_token:
            raise PermanentSourceError(
                "Twilio is not configured: set HUB_TELEPHONY__TWILIO__ACCOUNT_SID and "
                "HUB_TELEPHONY__TWILIO__AUTH_TOKEN"
            )
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.fetch_recordings = fetch_recordings
        self.http = HttpClient(
            base_url,
            source="Twilio",
            credential_setting="HUB_TELEPHONY__TWILIO__ACCOUNT_SID and HUB_TELEPHONY__TWILIO__AUTH_TOKEN",
            auth=(account_sid, auth_token),
            timeout_s=timeout_s,
            verify_tls=verify_tls,
            **http_options,
        )
        # Forwarded legs (children of an inbound call) seen so far: parent sid -> rep's number.
        self._answered_by: dict[str, str] = {}
        self._until: datetime | None = None

    @property
    def calls_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"

    def get_json(self, path_or_url: str, params: dict[str, Any] | None = None) -> Any:
        return self.http.get_json(path_or_url, params)

    def raw_pages(self, since: datetime, until: datetime | None) -> Iterator[list[Any]]:
        self._until = until
        # Twilio filters on the UTC date: the day of `since` is read whole, repeats dropped by sid.
        params: dict[str, Any] = {"StartTime>=": since.astimezone(UTC).date().isoformat()}
        if until is not None:
            params["StartTime<="] = until.astimezone(UTC).date().isoformat()
        params["PageSize"] = self.page_size
        next_uri: str | None = self.calls_path
        seen_uris: set[str] = set()
        while next_uri:
            body = self.get_json(next_uri, params if next_uri == self.calls_path else None)
            if not isinstance(body, dict) or not isinstance(body.get("calls"), list):
                raise PermanentSourceError(
                    "Twilio answered without a 'calls' list: HUB_TELEPHONY__TWILIO__BASE_URL is not the "
                    "Twilio REST API"
                )
            yield body["calls"]
            seen_uris.add(next_uri)
            candidate = body.get("next_page_uri")
            next_uri = str(candidate) if candidate and str(candidate) not in seen_uris else None

    def to_calls(self, records: list[Any], page: CallPage) -> list[Call]:
        parsed: list[TwilioCall] = parse_each(records, TwilioCall.model_validate, page, _sid_of)
        calls = []
        for record in parsed:
            try:
                call = self._to_call(record, page)
            except ValueError as exc:
                page.rejected.append(_rejected(record, exc))
                continue
            if call is not None:
                calls.append(call)
        return calls

    def _to_call(self, record: TwilioCall, page: CallPage) -> Call | None:
        """The call of a record; None for a call not over yet or a forwarded leg (which names,
        for its parent call, the rep who answered: in this run, or in the store afterwards)."""
        started = parse_twilio_time(record.start_time)
        if record.status in PENDING_STATUSES:
            moment = started or datetime.now(UTC)
            page.pending_since = min(page.pending_since or moment, moment)
            return None
        if record.parent_call_sid and record.direction.startswith("outbound-dial"):
            # A leg forwarding an inbound call to a rep's phone: it names who answered.
            if record.status == "completed":
                self._answered_by.setdefault(record.parent_call_sid, record.to)
                page.answered_by[record.parent_call_sid] = record.to
            page.skipped_legs += 1
            return None
        if started is None:
            raise ValueError(f"call {record.sid} is {record.status} but has no start_time")
        if self._until is not None and started >= self._until:
            return None
        disposition = FINAL_STATUSES[record.status]
        duration = record.duration or 0
        if disposition == "answered" and duration == 0:
            disposition = "missed"
        inbound = record.direction in INBOUND_DIRECTIONS
        rep_number = self._answered_by.get(record.sid) if inbound else record.from_
        return Call(
            provider=self.provider,
            call_id=record.sid,
            direction="inbound" if inbound else "outbound",
            caller=record.from_,
            callee=record.to,
            started_at=started,
            duration_s=duration,
            talk_s=duration if disposition == "answered" else 0,
            disposition=disposition,
            provider_status=record.status,
            recording_url=self._recording_url(record) if disposition == "answered" else None,
            rep_number=rep_number or None,
            dialled_number=record.to if inbound else None,
        )

    def _recording_url(self, record: TwilioCall) -> str | None:
        if not self.fetch_recordings:
            return None
        uri = record.subresource_uris.get("recordings") or (
            f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{record.sid}/Recordings.json"
        )
        body = self.get_json(str(uri))
        recordings = body.get("recordings") if isinstance(body, dict) else None
        if not recordings or not isinstance(recordings[0], dict) or not recordings[0].get("uri"):
            return None
        # The media URL is the resource URI without ".json"; ".mp3" asks for the compressed file.
        return self.base_url + str(recordings[0]["uri"]).removesuffix(".json") + ".mp3"


class TwilioSnapshot(TwilioCalls):
    """Recorded Twilio answers replayed from a JSON file: {"pages": [body, ...],
    "recordings": {call_sid: body}}. The date filter is applied as the API would."""

    def __init__(
        self, path: str | Path, *, account_sid: str = "ACdemo", fetch_recordings: bool = True
    ) -> None:
        self.path = Path(path)
        self.account_sid = account_sid
        self.base_url = DEFAULT_BASE_URL
        self.fetch_recordings = fetch_recordings
        self.page_size = 0
        self._answered_by = {}
        self._until = None
        self._recorded: dict[str, Any] = {}

    def raw_pages(self, since: datetime, until: datetime | None) -> Iterator[list[Any]]:
        self._until = until
        self._recorded = json.loads(self.path.read_text(encoding="utf-8"))
        day = since.astimezone(UTC).date()
        for body in self._recorded.get("pages", []):
            kept = []
            for raw in body.get("calls", []):
                try:
                    started = parse_twilio_time(raw.get("start_time")) if isinstance(raw, dict) else None
                except ValueError:
                    started = None
                if started is None or started.date() >= day:
                    kept.append(raw)
            yield kept

    def get_json(self, path_or_url: str, params: dict[str, Any] | None = None) -> Any:
        call_sid = path_or_url.rstrip("/").split("/Calls/")[-1].split("/")[0]
        return self._recorded.get("recordings", {}).get(call_sid, {"recordings": []})


def _sid_of(raw: dict[str, Any]) -> str | None:
    sid = raw.get("sid")
    return str(sid)[:300] if sid is not None else None


def _rejected(record: TwilioCall, exc: Exception) -> RejectedRecord:
    return RejectedRecord(record.model_dump(), exc, record.sid)
