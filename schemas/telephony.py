"""Calls as every telephony provider's connector hands them to the hub: one normalized `Call`
per call, whatever the provider (Twilio, Zadarma, Asterisk CDR), plus each provider's raw record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

Direction = Literal["inbound", "outbound", "internal"]
Disposition = Literal["answered", "missed", "busy", "failed"]


class Call(BaseModel):
    """One call, normalized across providers. Numbers are kept as the provider wrote them;
    the hub normalizes them to E.164 with the configured default region."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=50)
    call_id: str = Field(min_length=1, max_length=300)
    direction: Direction
    caller: str = Field("", max_length=200)
    callee: str = Field("", max_length=200)
    started_at: datetime
    duration_s: int = Field(ge=0)
    talk_s: int = Field(ge=0)
    disposition: Disposition
    provider_status: str = Field("", max_length=50)
    recording_url: str | None = Field(None, max_length=4000)
    # The rep's side of the call: an internal extension and/or the rep's own phone number.
    extension: str | None = Field(None, max_length=32)
    rep_number: str | None = Field(None, max_length=64)
    # The number the client dialled on an inbound call (a tracking number carries a channel).
    dialled_number: str | None = Field(None, max_length=64)
    legs: int = Field(1, ge=1)
    # The provider's ids of the legs merged into this call (Asterisk "uniqueid:sequence"), so that a
    # leg read again in a later batch or file updates the call instead of counting twice.
    leg_refs: list[str] = Field(default_factory=list)

    @field_validator("started_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start time has no time zone")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _talk_within_duration(self) -> Call:
        if self.talk_s > self.duration_s:
            raise ValueError(f"talk time {self.talk_s}s is longer than the call ({self.duration_s}s)")
        return self


class TwilioCall(BaseModel):
    """A record of Twilio's Calls list (`/2010-04-01/Accounts/{sid}/Calls.json`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    sid: str = Field(min_length=2, max_length=64)
    parent_call_sid: str | None = None
    from_: str = Field("", validation_alias=AliasChoices("from", "from_"), max_length=200)
    to: str = Field("", max_length=200)
    status: Literal[
        "queued", "ringing", "in-progress", "canceled", "completed", "failed", "busy", "no-answer"
    ]
    direction: str = Field(min_length=1, max_length=40)
    # RFC 2822 in GMT ("Tue, 10 Aug 2010 08:02:17 +0000"); empty until the call starts.
    start_time: str | None = None
    duration: int | None = Field(None, ge=0)
    subresource_uris: dict[str, Any] = Field(default_factory=dict)

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _none_as_empty(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration_text(cls, value: object) -> object:
        # Twilio sends the duration as a string of seconds ("15"), null while the call is live.
        if isinstance(value, str):
            return int(value) if value.strip() else None
        return value


class ZadarmaCall(BaseModel):
    """A record of Zadarma's PBX statistics (`/v1/statistics/pbx/`): one leg of a call."""

    model_config = ConfigDict(extra="ignore")

    call_id: str = Field(min_length=1, max_length=100)
    pbx_call_id: str = Field(min_length=1, max_length=200)
    sip: str = Field("", max_length=64)
    callstart: str = Field(min_length=10, max_length=40)
    clid: str = Field("", max_length=200)
    destination: str = Field("", max_length=200)
    disposition: str = Field(min_length=1, max_length=60)
    seconds: int = Field(ge=0)
    is_recorded: bool = False

    @field_validator("sip", "clid", "destination", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        if value is None:
            return ""
        return str(value) if isinstance(value, int) else value

    @field_validator("call_id", "pbx_call_id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("is_recorded", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        # Zadarma writes the flag as "true"/"false" strings.
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return value


class CdrRow(BaseModel):
    """One Asterisk CDR row, whichever layout wrote it (connectors/asterisk_cdr.py names the
    columns); fields a layout lacks keep their defaults."""

    model_config = ConfigDict(extra="forbid")

    accountcode: str = ""
    src: str = ""
    dst: str = ""
    dcontext: str = ""
    clid: str = ""
    channel: str = ""
    dstchannel: str = ""
    lastapp: str = ""
    lastdata: str = ""
    start: datetime
    answer: datetime | None = None
    end: datetime
    duration: int = Field(ge=0)
    billsec: int = Field(ge=0)
    disposition: Literal["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"]
    amaflags: str = ""
    uniqueid: str = ""
    userfield: str = ""
    # newcdrcolumns=yes (cdr_csv) and SQL backends: the call all legs belong to, and the row's order.
    peeraccount: str = ""
    linkedid: str = ""
    sequence: int | None = None

    @field_validator("answer", mode="before")
    @classmethod
    def _empty_answer(cls, value: object) -> object:
        # An unanswered call has an empty `answer`.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("duration", "billsec", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # cdr_custom's ${CDR(duration,f)} writes fractions ("27.250").
        if isinstance(value, str) and "." in value:
            try:
                return round(float(value))
            except ValueError:
                return value
        return value

    @field_validator("sequence", mode="before")
    @classmethod
    def _empty_sequence(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> CdrRow:
        if self.billsec > self.duration:
            raise ValueError(f"billsec {self.billsec} is larger than duration {self.duration}")
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


# cdr_csv's columns in order (Master.csv, loguniqueid and loguserfield on), and every column name
# a CDR layout may use.
CDR_FIELDS: tuple[str, ...] = tuple(CdrRow.model_fields)[:18]
CDR_COLUMNS: frozenset[str] = frozenset(CdrRow.model_fields)
CDR_REQUIRED_FIELDS = 16
