"""Lead exports of the common form tools and CRMs — Google Forms, Meta Leads Center and lead-ads
downloads, Tilda, Contact Form 7 (Flamingo), Bitrix24, amoCRM: each tool's header set written once,
as data; the tool told from a file's header; dates read in the file's own order (day/month decided
once per file, from its rows); a mapping file (YAML) names the columns of any other export."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

# The record fields an export's columns may fill (schemas.site.WebLead), plus name parts.
LEAD_FIELDS = frozenset(
    {
        "id",
        "name",
        "first_name",
        "last_name",
        "middle_name",
        "phone",
        "email",
        "company",
        "message",
        "form",
        "page_url",
        "referrer",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "gclid",
        "yclid",
        "region",
        "language",
        "submitted_at",
    }
)
_UTM = {f"utm_{k}": f"utm_{k}" for k in ("source", "medium", "campaign", "term", "content")}
_UTM_SPACED = {f"utm {k}": f"utm_{k}" for k in ("source", "medium", "campaign", "term", "content")}


@dataclass(frozen=True)
class ExportFormat:
    """One tool's export: its headers (case-insensitive) -> lead field, the header sets that tell
    it (any one set, all of its headers present), whether its times are local (the account's zone)
    and the day/month order its dates take when no row of a file decides it."""

    name: str
    title: str
    columns: Mapping[str, str]
    signatures: tuple[tuple[str, ...], ...]
    day_first: bool
    local_time: bool = True
    # A form tool's other columns are the person's answers: kept as the lead's message (but for
    # the tool's own bookkeeping columns, `ignored`).
    answers_to_message: bool = True
    ignored: frozenset[str] = frozenset()
    # Values a tool writes in its own vocabulary, per field (Meta's platform "ig" is Instagram).
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat(
        "google_forms",
        "Google Forms",
        {
            "timestamp": "submitted_at",
            "отметка времени": "submitted_at",
            "sygnatura czasowa": "submitted_at",
            "email address": "email",
            "email": "email",
            "адрес электронной почты": "email",
            "adres e-mail": "email",
            "full name": "name",
            "name": "name",
            "your name": "name",
            "имя": "name",
            "фио": "name",
            "phone number": "phone",
            "phone": "phone",
            "mobile number": "phone",
            "номер телефона": "phone",
            "телефон": "phone",
            "company": "company",
            "company name": "company",
            "компания": "company",
            "message": "message",
            "comments": "message",
            "сообщение": "message",
            "комментарий": "message",
        },
        (("timestamp",), ("отметка времени",), ("sygnatura czasowa",)),
        day_first=False,  # an English-locale form writes M/D/YYYY
    ),
    ExportFormat(
        "meta_leads_center",
        "Meta Leads Center",
        {
            "created": "submitted_at",
            "name": "name",
            "full name": "name",
            "email address": "email",
            "email": "email",
            "phone number (recommended)": "phone",
            "phone number": "phone",
            "phone": "phone",
            "form": "form",
            "source": "utm_source",
        },
        (("created", "stage"), ("created", "phone number (recommended)"), ("created", "email address")),
        day_first=False,  # MM/DD/YYYY, HH:MM
        ignored=frozenset({"channel", "stage", "owner", "labels"}),
    ),
    ExportFormat(
        "meta_lead_ads",
        "Meta lead ads download",
        {
            "id": "id",
            "created_time": "submitted_at",
            "full_name": "name",
            "first_name": "first_name",
            "last_name": "last_name",
            "email": "email",
            "work_email": "email",
            "phone_number": "phone",
            "work_phone_number": "phone",
            "company_name": "company",
            "form_name": "form",
            "campaign_name": "utm_campaign",
            "ad_name": "utm_content",
            "platform": "utm_source",
        },
        (("created_time", "form_id"),),
        day_first=False,
        local_time=False,  # ISO 8601 with its offset
        ignored=frozenset(
            {
                "ad_id",
                "adset_id",
                "adset_name",
                "campaign_id",
                "form_id",
                "is_organic",
                "inbox_url",
                "lead_status",
            }
        ),
        values={
            "utm_source": {
                "fb": "facebook",
                "ig": "instagram",
                "msg": "messenger",
                "wa": "whatsapp",
                "an": "audience_network",
            }
        },
    ),
    ExportFormat(
        "tilda",
        "Tilda",
        {
            "name": "name",
            "имя": "name",
            "phone": "phone",
            "телефон": "phone",
            "email": "email",
            "textarea": "message",
            "comments": "message",
            "message": "message",
            "tranid": "id",
            "formname": "form",
            "referer": "referrer",
            "sent": "submitted_at",
            "date": "submitted_at",
            "дата": "submitted_at",
            **_UTM,
        },
        (("tranid",), ("formid", "formname")),
        day_first=True,
        ignored=frozenset({"formid", "cookies", "requestid"}),
    ),
    ExportFormat(
        "flamingo",
        "Contact Form 7 (Flamingo)",
        {
            "your-name": "name",
            "your-email": "email",
            "your-tel": "phone",
            "your-phone": "phone",
            "tel": "phone",
            "phone": "phone",
            "your-company": "company",
            "your-message": "message",
            "date": "submitted_at",
        },
        (("your-email", "date"), ("your-name", "date"), ("your-tel", "date")),
        day_first=True,
        local_time=False,  # get_post_time('c'): ISO 8601 with its offset
    ),
    ExportFormat(
        "bitrix24",
        "Bitrix24",
        {
            "id": "id",
            "название лида": "form",
            "имя": "first_name",
            "фамилия": "last_name",
            "отчество": "middle_name",
            "рабочий телефон": "phone",
            "мобильный телефон": "phone",
            "домашний телефон": "phone",
            "другой телефон": "phone",
            "рабочий e-mail": "email",
            "частный e-mail": "email",
            "другой e-mail": "email",
            "название компании": "company",
            "комментарий": "message",
            "дата создания": "submitted_at",
            **_UTM,
            **_UTM_SPACED,
        },
        (("рабочий телефон", "дата создания"), ("мобильный телефон", "дата создания"), ("рабочий e-mail",)),
        day_first=True,
        answers_to_message=False,
    ),
    ExportFormat(
        "amocrm",
        "amoCRM",
        {
            "id": "id",
            "название сделки": "form",
            "основной контакт": "name",
            "полное имя (контакт)": "name",
            "рабочий телефон (контакт)": "phone",
            "мобильный телефон (контакт)": "phone",
            "рабочий прямой телефон (контакт)": "phone",
            "домашний телефон (контакт)": "phone",
            "другой телефон (контакт)": "phone",
            "рабочий email (контакт)": "email",
            "личный email (контакт)": "email",
            "другой email (контакт)": "email",
            "компания": "company",
            "название (компания)": "company",
            "примечание": "message",
            "дата создания": "submitted_at",
            "дата создания сделки": "submitted_at",
            **_UTM,
        },
        (("рабочий телефон (контакт)",), ("основной контакт",), ("рабочий email (контакт)",)),
        day_first=True,
        answers_to_message=False,
    ),
)


def recognize(headers: Iterable[str]) -> ExportFormat | None:
    """The tool whose header set the file has (the one matching most columns), or None."""
    present = {h.strip().lower() for h in headers if h}
    best: tuple[int, ExportFormat] | None = None
    for fmt in FORMATS:
        if not any(all(h in present for h in signature) for signature in fmt.signatures):
            continue
        score = sum(1 for h in present if h in fmt.columns)
        if best is None or score > best[0]:
            best = (score, fmt)
    return best[1] if best else None


@dataclass(frozen=True)
class LeadMapping:
    """A mapping file for an export of any other tool (`hub import-leads --map map.yaml`):
    columns:            # header in the file -> lead field
      Клиент: name
      Тел.: phone
      Почта: email
      Когда: submitted_at
    day_first: true     # optional; else decided from the rows
    timezone: Europe/Moscow   # optional: the zone of times written without one"""

    columns: Mapping[str, str]
    day_first: bool | None = None
    timezone: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> LeadMapping:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not a YAML mapping file: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("columns"), dict) or not data["columns"]:
            raise ValueError(f"{path}: needs `columns:` naming each header and its lead field")
        columns = {str(k).strip().lower(): str(v).strip() for k, v in data["columns"].items()}
        unknown = sorted({v for v in columns.values() if v not in LEAD_FIELDS})
        if unknown:
            raise ValueError(
                f"{path}: {', '.join(unknown)} is not a lead field; use one of {', '.join(sorted(LEAD_FIELDS))}"
            )
        if "phone" not in columns.values() and "email" not in columns.values():
            raise ValueError(f"{path}: map at least one column to phone or email")
        day_first = data.get("day_first")
        if day_first is not None and not isinstance(day_first, bool):
            raise ValueError(f"{path}: day_first must be true or false")
        zone = data.get("timezone")
        if zone is not None:
            ZoneInfo(str(zone))  # an unknown zone fails here, naming itself
        return cls(columns, day_first, str(zone) if zone else None)

    def as_format(self) -> ExportFormat:
        return ExportFormat(
            "mapping",
            "mapping file",
            self.columns,
            (),
            self.day_first if self.day_first is not None else True,
            answers_to_message=False,
        )


# ---------------------------------------------------------------- dates

_MERIDIEM = r"(?:\s*(?P<ampm>[AaPp]\.?\s?[Mm]\.?))?"
_ZONE = r"(?:\s*(?:GMT|UTC)\s*(?P<zone>[+-]\d{1,2}(?::?\d{2})?)?)?"
_TIME = (
    rf"(?:[,\s]+(?:at\s+)?(?P<h>\d{{1,2}}):(?P<mi>\d{{2}})(?::(?P<s>\d{{2}})(?:\.\d+)?)?{_MERIDIEM}{_ZONE})?"
)
_DMY_OR_MDY = re.compile(
    rf"^\s*(?P<a>\d{{1,2}})(?P<sep>[./-])(?P<b>\d{{1,2}})(?P=sep)(?P<y>\d{{4}}|\d{{2}}){_TIME}\s*$"
)
_YMD = re.compile(rf"^\s*(?P<y>\d{{4}})[/.-](?P<m>\d{{1,2}})[/.-](?P<d>\d{{1,2}}){_TIME}\s*$")


@dataclass
class DateOrder:
    """How a file's ambiguous dates (3/4/2024) are read, and why; said in the import's output."""

    day_first: bool
    reason: str
    ambiguous: bool = True

    def describe(self) -> str:
        if not self.ambiguous:
            return f"unambiguous ({self.reason})"
        return f"{'day/month' if self.day_first else 'month/day'} ({self.reason})"


def slashed_parts(text: str) -> tuple[int, int] | None:
    """The first two numbers of a D/M/Y or M/D/Y date written with slashes or dashes (dots are a
    day-first convention everywhere), or None."""
    match = _DMY_OR_MDY.match(text or "")
    if match is None or match.group("sep") == ".":
        return None
    return int(match.group("a")), int(match.group("b"))


def decide_day_first(values: Iterable[tuple[int, str]], default: bool, tool: str) -> DateOrder:
    """Read the file's dates until one can only be one way (13/02/2024 is day first, 02/13/2024
    month first); with none, the tool's default order."""
    ambiguous = False
    for row, value in values:
        parts = slashed_parts(value)
        if parts is None:
            continue
        ambiguous = True
        first, second = parts
        if first > 12 >= second:
            return DateOrder(True, f"decided by row {row}: {value.strip()!r}")
        if second > 12 >= first:
            return DateOrder(False, f"decided by row {row}: {value.strip()!r}")
    if not ambiguous:
        return DateOrder(default, "ISO 8601, yyyy/mm/dd or dd.mm.yyyy", ambiguous=False)
    return DateOrder(default, f"no date of the file decides it: {tool}'s usual order")


def _zone_offset(text: str | None) -> timezone | None:
    if not text:
        return None
    sign = -1 if text.startswith("-") else 1
    digits = text[1:].replace(":", "")
    hours, minutes = (int(digits[:-2] or 0), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_export_datetime(text: str, day_first: bool, zone: ZoneInfo | timezone) -> datetime:
    """A date and time as form tools write them — ISO 8601, "2024/03/05 2:22:10 PM GMT+3",
    "3/5/2024 14:22:10", "03/05/2024, 14:22", "05.03.2024 14:22" — aware: its own offset, else
    `zone`. ValueError says what was not understood."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
    match = _YMD.match(value)
    if match is not None:
        year, month, day = int(match.group("y")), int(match.group("m")), int(match.group("d"))
    else:
        match = _DMY_OR_MDY.match(value)
        if match is None:
            raise ValueError(f"{text!r} is not a date and time")
        a, b, year = int(match.group("a")), int(match.group("b")), int(match.group("y"))
        year = year + 2000 if year < 100 else year
        day, month = (a, b) if day_first or match.group("sep") == "." else (b, a)
    hour = int(match.group("h") or 0)
    ampm = (match.group("ampm") or "").lower().replace(".", "").replace(" ", "")
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    own = _zone_offset(match.group("zone"))
    try:
        return datetime(
            year,
            month,
            day,
            hour,
            int(match.group("mi") or 0),
            int(match.group("s") or 0),
            tzinfo=own or zone,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date ({exc})") from None


# ---------------------------------------------------------------- rows


@dataclass
class RowReader:
    """Turns a row of a recognized export (or a mapping file's) into a lead record."""

    fmt: ExportFormat
    headers: list[str]
    order: DateOrder
    zone: ZoneInfo | timezone
    file_time: datetime
    fields_of: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.fields_of = {
            h: self.fmt.columns[h.strip().lower()]
            for h in self.headers
            if h and h.strip().lower() in self.fmt.columns
        }

    def record(self, row: Mapping[str | None, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for header, value in row.items():
            if header is None:
                record["_extra_cells"] = value
                continue
            target = self.fields_of.get(header)
            text = value.strip() if isinstance(value, str) else value
            if target is None:
                if text and header.strip().lower() not in self.fmt.ignored:
                    extra[header.strip()] = text
                continue
            if text and target in self.fmt.values:
                text = self.fmt.values[target].get(text.lower(), text)
            if text and not record.get(target):  # first non-empty column of a field wins
                record[target] = text
        if not record.get("name"):
            last, first, middle = (record.get(k, "") for k in ("last_name", "first_name", "middle_name"))
            # With a patronymic, the Russian order (Фамилия Имя Отчество); else "first last".
            name = " ".join(p for p in ((last, first, middle) if middle else (first, last)) if p)
            if name:
                record["name"] = name
        for key in ("first_name", "last_name", "middle_name"):
            record.pop(key, None)
        if isinstance(record.get("phone"), str) and record["phone"].lower().startswith("p:"):
            record["phone"] = record["phone"][2:]  # Meta writes "p:+447..."
        stamp = record.get("submitted_at")
        if not stamp:
            record["submitted_at"] = self.file_time.isoformat()
            record["_time_from_file"] = True
        else:
            # A value that is no date is left as written: the lead's validation names it.
            with contextlib.suppress(ValueError):
                record["submitted_at"] = parse_export_datetime(
                    str(stamp), self.order.day_first, self.zone
                ).isoformat()
        if extra and self.fmt.answers_to_message and not record.get("message"):
            # Answers to the form's other questions are worth keeping on the lead.
            record["message"] = "; ".join(f"{k}: {v}" for k, v in list(extra.items())[:20])[:10_000]
        return record


def zone_for(fmt: ExportFormat, mapping: LeadMapping | None, local_zone: str | None) -> ZoneInfo | timezone:
    """The zone of times an export writes without one: the mapping's, the account's local zone for
    tools that write local time, else UTC."""
    if mapping is not None and mapping.timezone:
        return ZoneInfo(mapping.timezone)
    if fmt.local_time and local_zone:
        return ZoneInfo(local_zone)
    return UTC
