"""What every telephony connector shares: the page of calls it yields, the cloud-PBX read loop
(parse, drop repeats, reject bad records with a reason), and the merging of a call's legs.

A cloud PBX of the usual shape (paged JSON list of calls over HTTP) is one subclass of
`CloudPbxSource` implementing `raw_pages` and `to_calls`; see connectors/twilio.py and
connectors/zadarma.py."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from connectors.errors import TransientSourceError
from schemas.telephony import Call

# How many full pages in a row may consist only of calls already seen before the source is
# taken to be looping (an API that ignores its paging parameter).
MAX_REPEATED_PAGES = 3


@dataclass
class RejectedRecord:
    """A provider record that could not be turned into a call, and why."""

    raw: Any
    reason: str | Exception
    ref: str | None = None


@dataclass
class CallPage:
    calls: list[Call] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    # Calls not yet over (ringing, in progress): not written; the cursor stays before them.
    pending_since: datetime | None = None
    repeated: int = 0
    skipped_legs: int = 0
    # Legs that are not calls of their own but name the rep who answered a call: call id -> number.
    answered_by: dict[str, str] = field(default_factory=dict)


class CallSource(Protocol):
    """Anything that yields a provider's calls in a time range, page by page."""

    provider: str

    def pages(self, since: datetime, until: datetime | None = None) -> Iterator[CallPage]: ...


class CloudPbxSource(ABC):
    """The read loop of a cloud PBX: subclasses say how to fetch raw pages and how a raw
    record becomes calls; this class drops calls seen earlier in the run (repeated pages) and
    turns every record that fails into a `RejectedRecord`."""

    provider: ClassVar[str]

    @abstractmethod
    def raw_pages(self, since: datetime, until: datetime | None) -> Iterator[list[Any]]:
        """The records of each page, as the API sent them."""

    @abstractmethod
    def to_calls(self, records: list[Any], page: CallPage) -> list[Call]:
        """Calls of one page; a bad record is appended to `page.rejected` (see `parse_each`)."""

    def pages(self, since: datetime, until: datetime | None = None) -> Iterator[CallPage]:
        seen: set[str] = set()
        stale_pages = 0
        for records in self.raw_pages(since, until):
            page = CallPage()
            for call in self.to_calls(records, page):
                if call.call_id in seen:
                    page.repeated += 1
                    continue
                seen.add(call.call_id)
                page.calls.append(call)
            if records and not page.calls and page.repeated and not page.rejected:
                stale_pages += 1
                if stale_pages >= MAX_REPEATED_PAGES:
                    raise TransientSourceError(
                        f"{self.provider}: {stale_pages} pages in a row repeated calls already read; "
                        "the API is not advancing its pages"
                    )
            else:
                stale_pages = 0
            yield page


def parse_each(records: list[Any], parse: Any, page: CallPage, ref_of: Any) -> list[Any]:
    """Apply `parse` to each record; a failure becomes a rejected record with a readable reason."""
    out = []
    for raw in records:
        try:
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
            out.append(parse(raw))
        except (ValidationError, ValueError) as exc:
            page.rejected.append(RejectedRecord(raw, exc, ref_of(raw) if isinstance(raw, dict) else None))
    return out


# Disposition of a call made of several legs (ring groups, queues, transfers): answered if
# anyone answered; otherwise the client rang and nobody picked up, unless every leg was busy.
_LEG_PRIORITY = {"answered": 0, "missed": 1, "busy": 2, "failed": 3}


def merge_legs(legs: list[Call]) -> Call:
    """One call from the legs a PBX logged for it: first start, longest duration, the answered
    leg's talk time, extension and recording."""
    if len(legs) == 1:
        return legs[0]
    first = min(legs, key=lambda c: c.started_at)
    best = min(legs, key=lambda c: (_LEG_PRIORITY[c.disposition], -c.talk_s))
    end = max(c.started_at.timestamp() + c.duration_s for c in legs)
    duration = max(round(end - first.started_at.timestamp()), best.talk_s)
    return first.model_copy(
        update={
            "disposition": best.disposition,
            "provider_status": best.provider_status,
            "talk_s": best.talk_s,
            "duration_s": duration,
            "extension": best.extension or first.extension,
            "rep_number": best.rep_number or first.rep_number,
            "recording_url": best.recording_url
            or next((c.recording_url for c in legs if c.recording_url), None),
            "legs": sum(c.legs for c in legs),
            "leg_refs": list(dict.fromkeys(ref for c in legs for ref in c.leg_refs)),
        }
    )


_DIGITS = re.compile(r"\D")


def is_extension(number: str | None, max_digits: int) -> bool:
    """An internal extension (e.g. "101") rather than a phone number of the outside world."""
    if not number:
        return False
    digits = _DIGITS.sub("", number)
    return 0 < len(digits) <= max_digits and not number.strip().startswith("+")
