"""1C:Enterprise accounting over its standard OData interface (v3), and a recording of it replayed
offline: counterparties, invoices to clients and incoming payments turned into schemas/accounting
records.

The interface, as 1C documents it:
  GET {base}/odata/standard.odata/$metadata                 EDMX: what the base publishes
  GET {base}/odata/standard.odata/<Entity>?$format=json&$filter=...&$top=n&$skip=k&$orderby=...
  HTTP Basic; 200 {"odata.metadata": "...", "value": [{...}, ...]}
`$inlinecount=allpages` makes 1C ignore $top/$skip, so it is never sent: paging stops at a
short page. Reference fields are `X_Key` GUIDs (the empty GUID is "no reference"); composite fields
are `X` plus `X_Type`; money is Edm.Double; dates carry no time zone (they are the base's local
time); the empty date is 0001-01-01T00:00:00. An authentication problem may come back as an HTML
page with status 200."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

from connectors.errors import CredentialError, PermanentSourceError
from connectors.http import HttpClient
from schemas.accounting import to_money

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"
EMPTY_DATE = "0001-01-01T00:00:00"
COUNTERPARTIES = "Catalog_Контрагенты"
INVOICES = "Document_СчетНаОплатуПокупателю"
PAYMENTS = "Document_ПоступлениеНаРасчетныйСчет"
PAYMENT_LINES = "Document_ПоступлениеНаРасчетныйСчет_РасшифровкаПлатежа"
INVOICE_TYPE = f"StandardODATA.{INVOICES}"
COUNTERPARTY_TYPE = f"StandardODATA.{COUNTERPARTIES}"
# Kinds of incoming payment that are a client paying (1C's ВидОперации); others (a loan, a
# supplier's refund, cash from the till) are not receivables.
CLIENT_PAYMENT_KINDS = {"ОплатаПокупателя", ""}

# What the hub reads from each entity: validated against $metadata before any data is read.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    COUNTERPARTIES: ("Ref_Key", "Description", "ИНН", "КПП"),
    INVOICES: ("Ref_Key", "Number", "Date", "Posted", "DeletionMark", "Контрагент_Key", "СуммаДокумента"),
    PAYMENTS: (
        "Ref_Key",
        "Number",
        "Date",
        "Posted",
        "DeletionMark",
        "Контрагент",
        "Контрагент_Type",
        "СуммаДокумента",
        "НазначениеПлатежа",
        "РасшифровкаПлатежа",
    ),
    PAYMENT_LINES: ("СчетНаОплату_Key", "Сделка", "Сделка_Type", "СуммаПлатежа"),
}
SETTING_HINT = (
    "publish it in 1C (Администрирование > Обслуживание > Настройка стандартного интерфейса OData) "
    "or check HUB_ACCOUNTING__ODATA_URL points at the right base"
)


@dataclass
class Rejected:
    ref: str | None
    raw: Any
    reason: str


@dataclass
class RecordPage:
    """One page of an entity mapped to schemas/accounting records (still to be validated)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)


class AccountingSource(Protocol):
    """What the ingest needs from the accounting system (the live API or a recording of it)."""

    def validate(self) -> None: ...

    def counterparties(self) -> Iterator[dict[str, Any]]: ...

    def invoice_pages(self, since: str, counterparties: dict[str, Any]) -> Iterator[RecordPage]: ...

    def payment_pages(self, since: str, counterparties: dict[str, Any]) -> Iterator[RecordPage]: ...

    def requests_made(self) -> int: ...


def reference(value: Any) -> str | None:
    """A GUID reference, or None for the empty GUID (1C's "not filled")."""
    if not value or not isinstance(value, str) or value == EMPTY_GUID:
        return None
    return value


def row_key(row: Any) -> tuple[Any, ...] | None:
    """What identifies a row within an entity: Ref_Key, plus LineNumber for a row of a tabular
    part; None for a row without one (it is kept and rejected by the mapping with a reason)."""
    if not isinstance(row, dict) or not isinstance(row.get("Ref_Key"), str):
        return None
    return (row["Ref_Key"], row.get("LineNumber"))


def local_datetime(value: Any, timezone: str) -> datetime | None:
    """A 1C date (naive, in the base's time zone) as an aware datetime; None for the empty date."""
    if not value or value == EMPTY_DATE:
        return None
    if not isinstance(value, str):
        raise ValueError(f"date {value!r} is not text")
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"date {value!r} is not an OData datetime") from None
    return naive.replace(tzinfo=ZoneInfo(timezone)) if naive.tzinfo is None else naive


def since_literal(since: str) -> str:
    """The cursor as an OData datetime literal body: "2024-03-05" -> "2024-03-05T00:00:00"."""
    value = datetime.fromisoformat(since)
    return value.replace(tzinfo=None).isoformat(timespec="seconds")


def published_fields(metadata_xml: str) -> dict[str, set[str]]:
    """Entity and complex types of an EDMX document with their property names."""
    text = metadata_xml.lstrip()
    if text[:15].lower().startswith(("<!doctype", "<html")):
        raise CredentialError(
            "1C answered $metadata with an HTML page instead of EDMX: usually a login page; "
            "check HUB_ACCOUNTING__ODATA_USER / HUB_ACCOUNTING__ODATA_PASSWORD and the base URL"
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PermanentSourceError(
            f"1C $metadata is not XML ({exc}): check HUB_ACCOUNTING__ODATA_URL"
        ) from None
    types: dict[str, set[str]] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("EntityType", "ComplexType"):
            name = element.get("Name", "")
            # Tabular parts are published as "<Document>_<Part>_RowType".
            name = name.removesuffix("_RowType")
            props = {
                child.get("Name", "")
                for child in element
                if child.tag.rsplit("}", 1)[-1] in ("Property", "NavigationProperty")
            }
            types.setdefault(name, set()).update(props)
    return types


def check_metadata(metadata_xml: str) -> None:
    """Fail with one message naming every entity or field the hub needs that 1C does not publish."""
    types = published_fields(metadata_xml)
    problems = []
    for entity, needed in REQUIRED_FIELDS.items():
        if entity not in types:
            problems.append(f"entity {entity} is not published")
            continue
        missing = [f for f in needed if f not in types[entity]]
        if missing:
            problems.append(f"{entity} lacks {', '.join(missing)}")
    if problems:
        raise PermanentSourceError("1C OData: " + "; ".join(problems) + ": " + SETTING_HINT)


class _OneCBase:
    """Paging and mapping shared by the live API and the recording."""

    def __init__(
        self,
        *,
        timezone: str = "Europe/Moscow",
        page_size: int = 500,
        default_terms_days: int = 5,
        due_field: str = "СрокОплаты",
    ) -> None:
        self.timezone = timezone
        self.page_size = page_size
        self.default_terms_days = default_terms_days
        self.due_field = due_field

    # implemented by the subclasses
    def fetch(self, entity: str, filter_expr: str | None, orderby: str, top: int, skip: int) -> list[Any]:
        raise NotImplementedError

    def metadata(self) -> str:
        raise NotImplementedError

    def validate(self) -> None:
        check_metadata(self.metadata())

    def _pages(self, entity: str, filter_expr: str | None, orderby: str) -> Iterator[list[Any]]:
        """Pages of an entity by position: $skip advances by the $top asked for, whatever came
        back (a page padded with rows of the previous one must not push the next page past rows
        never read), and a row already yielded in this sync is dropped by its key."""
        skip = 0
        seen: set[tuple[Any, ...]] = set()
        while True:
            rows = self.fetch(entity, filter_expr, orderby, self.page_size, skip)
            fresh = []
            for row in rows:
                key = row_key(row)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                fresh.append(row)
            yield fresh
            # A short page is the last one (1C has no next link; $inlinecount is never sent).
            if len(rows) < self.page_size:
                return
            skip += self.page_size

    def counterparties(self) -> Iterator[dict[str, Any]]:
        for rows in self._pages(COUNTERPARTIES, None, "Ref_Key"):
            for row in rows:
                if not isinstance(row, dict) or row.get("IsFolder"):
                    continue  # groups of the catalog, not clients
                yield {
                    "source_ref": row.get("Ref_Key"),
                    "name": row.get("Description"),
                    "full_name": row.get("НаименованиеПолное"),
                    "tax_id": row.get("ИНН"),
                    "kpp": row.get("КПП"),
                }

    @staticmethod
    def _document_filter(since: str) -> str:
        return f"Date ge datetime'{since_literal(since)}' and Posted eq true and DeletionMark eq false"

    def _mapped_pages(
        self, entity: str, since: str, mapper: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> Iterator[RecordPage]:
        for rows in self._pages(entity, self._document_filter(since), "Date,Ref_Key"):
            page = RecordPage()
            for row in rows:
                ref = row.get("Ref_Key") if isinstance(row, dict) else None
                try:
                    if not isinstance(row, dict):
                        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
                    record = mapper(row)
                except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
                    page.rejected.append(Rejected(ref, row, f"{entity} {ref}: {exc}"))
                    continue
                if isinstance(row.get("Date"), str):
                    page.dates.append(row["Date"])
                if record is not None:
                    page.records.append(record)
            yield page

    def _date(self, value: Any) -> date | None:
        moment = local_datetime(value, self.timezone)
        return moment.date() if moment else None

    def invoice_pages(self, since: str, counterparties: dict[str, Any]) -> Iterator[RecordPage]:
        def mapper(row: dict[str, Any]) -> dict[str, Any]:
            issued = self._date(row.get("Date"))
            if issued is None:
                raise ValueError("Date is empty")
            due = self._date(row.get(self.due_field)) or issued + timedelta(days=self.default_terms_days)
            party = counterparties.get(reference(row.get("Контрагент_Key")) or "", (None, None))
            return {
                "source_ref": row.get("Ref_Key"),
                "number": str(row.get("Number") or "").strip(),
                "issued_on": issued,
                "due_on": due,
                "amount": to_money(row.get("СуммаДокумента")),
                "counterparty_tax_id": party[0],
                "counterparty_name": party[1],
            }

        yield from self._mapped_pages(INVOICES, since, mapper)

    def payment_pages(self, since: str, counterparties: dict[str, Any]) -> Iterator[RecordPage]:
        def mapper(row: dict[str, Any]) -> dict[str, Any] | None:
            if str(row.get("ВидОперации") or "") not in CLIENT_PAYMENT_KINDS:
                return None
            paid = self._date(row.get("Date"))
            if paid is None:
                raise ValueError("Date is empty")
            party: tuple[Any, Any] = (None, None)
            # Контрагент is composite: a GUID whose meaning is given by Контрагент_Type.
            if row.get("Контрагент_Type") == COUNTERPARTY_TYPE:
                party = counterparties.get(reference(row.get("Контрагент")) or "", (None, None))
            links = []
            for line in row.get("РасшифровкаПлатежа") or []:
                invoice = reference(line.get("СчетНаОплату_Key"))
                if invoice is None and line.get("Сделка_Type") == INVOICE_TYPE:
                    invoice = reference(line.get("Сделка"))
                if invoice is not None:
                    amount = line.get("СуммаПлатежа")
                    links.append(
                        {"invoice_ref": invoice, "amount": to_money(amount) if amount is not None else None}
                    )
            return {
                "source_ref": row.get("Ref_Key"),
                "paid_on": paid,
                "amount": to_money(row.get("СуммаДокумента")),
                "payer_tax_id": party[0],
                "payer_name": party[1],
                "purpose": row.get("НазначениеПлатежа"),
                "linked_invoices": links,
            }

        yield from self._mapped_pages(PAYMENTS, since, mapper)


class OneCOData(_OneCBase):
    """The live 1C base over HTTP (HttpClient: retries honouring Retry-After, TLS, HTML bodies)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        *,
        timeout_s: float = 60.0,
        verify_tls: bool = True,
        **options: Any,
    ) -> None:
        http_options = {
            k: options.pop(k)
            for k in list(options)
            if k in ("max_retries", "backoff_factor", "backoff_max_s", "body_retries")
        }
        super().__init__(**options)
        self.http = HttpClient(
            base_url,
            source="1C OData",
            credential_setting="HUB_ACCOUNTING__ODATA_USER / HUB_ACCOUNTING__ODATA_PASSWORD",
            auth=(user, password),
            timeout_s=timeout_s,
            verify_tls=verify_tls,
            **http_options,
        )

    def metadata(self) -> str:
        response = self.http.get("$metadata")
        response.encoding = response.encoding or "utf-8"
        return response.text

    def fetch(self, entity: str, filter_expr: str | None, orderby: str, top: int, skip: int) -> list[Any]:
        # Built by hand: 1C wants the "$" of system options literal, the values percent-encoded.
        query = ["$format=json", f"$top={top}", f"$skip={skip}", f"$orderby={quote(orderby, safe=',')}"]
        if filter_expr:
            query.append(f"$filter={quote(filter_expr, safe='')}")
        body = self.http.get_json(f"{quote(entity)}?{'&'.join(query)}")
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise PermanentSourceError(
                f"1C OData answered {entity} without a 'value' list: not the standard OData interface"
            )
        return body["value"]

    def requests_made(self) -> int:
        return self.http.requests_made


class OneCSnapshot(_OneCBase):
    """Recorded 1C responses replayed offline (the demo, trying rules): a JSON file holding
    {"$metadata": "<edmx>", "<Entity>": [rows as 1C sends them], ...}. The document filter is
    applied as 1C applies it, and paging runs through the same code as the live API."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__(**options)
        self.path = Path(path)
        self.recording: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        self.calls = 0

    def metadata(self) -> str:
        self.calls += 1
        return str(self.recording.get("$metadata", ""))

    def fetch(self, entity: str, filter_expr: str | None, orderby: str, top: int, skip: int) -> list[Any]:
        self.calls += 1
        rows = list(self.recording.get(entity, []))
        if filter_expr:
            since = filter_expr.split("'")[1]
            rows = [
                r
                for r in rows
                if str(r.get("Date", "")) >= since
                and r.get("Posted") is True
                and r.get("DeletionMark") is False
            ]
        rows.sort(key=lambda r: tuple(str(r.get(k, "")) for k in orderby.split(",")))
        return rows[skip : skip + top]

    def requests_made(self) -> int:
        return self.calls
