"""Every source's parser against hostile and broken input (hypothesis): CDR CSV, 1C OData
JSON, bank statements, MIME read receipts. A parser may refuse a record — with a reason —
but never crash the run, and every row it is given is accounted for."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.asterisk_cdr import read_cdr
from connectors.bank_statement import parse_statement
from connectors.errors import PermanentSourceError
from connectors.onec_odata import INVOICES, PAYMENTS, OneCSnapshot
from connectors.receipts import NotAReceipt, parse_receipt
from tests.reliability.test_hostile_input import HOSTILE_TEXT

PROFILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
numbers = st.sampled_from(["+79161234567", "89161234567", "101", "", "anonymous", "<unknown>"])
stamps = st.sampled_from(["2026-11-20 10:00:00", "2026-13-45 99:99:99", "", "yesterday"])
dispositions = st.sampled_from(["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", ""])


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


cdr_rows = st.lists(
    st.tuples(
        texts,
        numbers,
        numbers,
        texts,
        texts,
        texts,
        texts,
        texts,
        texts,
        stamps,
        stamps,
        stamps,
        st.sampled_from(["0", "45", "-3", "x", ""]),
        st.sampled_from(["0", "40", "99999999999999999999", ""]),
        dispositions,
        st.sampled_from(["DOCUMENTATION", "3", ""]),
        st.text(max_size=12),
    ).map(lambda row: ",".join(_csv_field(v) for v in row)),
    max_size=8,
)


@PROFILE
@given(rows=cdr_rows, junk=st.binary(max_size=80), truncate=st.booleans())
def test_asterisk_cdr_rows_become_calls_or_reasons(
    tmp_path_factory: pytest.TempPathFactory, rows: list[str], junk: bytes, truncate: bool
) -> None:
    data = ("\n".join(rows) + "\n").encode("utf-8") + junk
    if truncate:
        data = data[: len(data) * 2 // 3]
    path = tmp_path_factory.mktemp("cdr") / "Master.csv"
    path.write_bytes(data)
    batches = list(read_cdr(path, to_end=True))
    rows_read = sum(b.rows for b in batches)
    accounted = sum(len(b.calls) + b.skipped_legs + len(b.rejected) for b in batches)
    assert accounted == rows_read  # every row: a call, a merged leg, or refused
    assert all(str(r.error if hasattr(r, "error") else r).strip() for b in batches for r in b.rejected)


odata_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    texts,
    st.sampled_from(["2026-11-20T10:00:00", "0001-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
    st.lists(st.dictionaries(st.text(max_size=6), texts, max_size=2), max_size=2),
)
odata_rows = st.lists(
    st.fixed_dictionaries(
        {
            "Date": st.sampled_from(["2026-11-20T10:00:00", "2026-11-21T00:00:00"]),
            "Posted": st.just(True),
            "DeletionMark": st.just(False),
        },
        optional={
            "Ref_Key": texts,
            "Number": odata_values,
            "СуммаДокумента": odata_values,
            "Контрагент_Key": odata_values,
            "Контрагент": odata_values,
            "Контрагент_Type": odata_values,
            "НазначениеПлатежа": odata_values,
            "РасшифровкаПлатежа": odata_values,
            "ДатаВходящегоДокумента": odata_values,
        },
    ),
    max_size=6,
)


@PROFILE
@given(invoices=odata_rows, payments=odata_rows)
def test_onec_odata_rows_become_records_or_reasons(
    tmp_path_factory: pytest.TempPathFactory, invoices: list[dict], payments: list[dict]
) -> None:
    path = tmp_path_factory.mktemp("odata") / "recording.json"
    path.write_text(
        json.dumps({INVOICES: invoices, PAYMENTS: payments}, ensure_ascii=False), encoding="utf-8"
    )
    source = OneCSnapshot(path)
    for pages, rows in (
        (source.invoice_pages("2026-01-01T00:00:00", {}), invoices),
        (source.payment_pages("2026-01-01T00:00:00", {}), payments),
    ):
        pages = list(pages)
        records = sum(len(p.records) for p in pages)
        rejected = [r for p in pages for r in p.rejected]
        assert records + len(rejected) <= len(rows)
        assert all(r.reason.strip() for r in rejected)


statement_fields = st.sampled_from(
    [
        "Номер",
        "Дата",
        "Сумма",
        "ПлательщикИНН",
        "ПлательщикСчет",
        "Плательщик1",
        "ПолучательСчет",
        "НазначениеПлатежа",
        "ДатаПоступило",
        "Кодировка",
        "ВерсияФормата",
    ]
)


@st.composite
def statements(draw: st.DrawFn) -> bytes:
    lines = [
        "1CClientBankExchange",
        "ВерсияФормата=1.03",
        f"Кодировка={draw(st.sampled_from(['Windows', 'DOS', 'UTF-8', '']))}",
    ]
    for _ in range(draw(st.integers(0, 4))):
        lines.append(f"СекцияДокумент={draw(st.sampled_from(['Платежное поручение', '', '<script>']))}")
        for _ in range(draw(st.integers(0, 6))):
            lines.append(f"{draw(statement_fields)}={draw(texts).replace(chr(10), ' ')}")
        if draw(st.booleans()):
            lines.append("КонецДокумента")
    if draw(st.booleans()):  # without it, a file may end right after "Кодировка="
        lines.append("КонецФайла")
    encoding = draw(st.sampled_from(["cp1251", "cp866", "utf-8"]))
    data = "\r\n".join(lines).encode(encoding, errors="replace")
    return data + draw(st.binary(max_size=20))


@PROFILE
@given(raw=statements())
def test_bank_statements_never_crash_and_malformed_sections_have_reasons(raw: bytes) -> None:
    try:
        statement = parse_statement(raw)
    except PermanentSourceError as exc:  # the whole file refused, with the reason
        assert str(exc).strip()
        return
    assert all(m.reason.strip() for m in statement.malformed)


def test_a_statement_cut_after_its_encoding_key_is_refused_with_a_reason() -> None:
    with pytest.raises(PermanentSourceError):
        parse_statement("1CClientBankExchange\r\nКодировка=".encode("cp1251"))


def _receipt(subject: str, body: str, report: str, charset: str) -> bytes:
    return (
        "From: client@example.ru\r\nTo: rep@sales.example.ru\r\n"
        f"Subject: {subject}\r\nMessage-ID: <r1@example.ru>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n\r\n'
        f'--b\r\nContent-Type: text/plain; charset="{charset}"\r\n\r\n{body}\r\n'
        f"--b\r\nContent-Type: message/disposition-notification\r\n\r\n{report}\r\n--b--\r\n"
    ).encode("utf-8", errors="surrogateescape")


receipts = st.one_of(
    st.binary(max_size=400),
    st.builds(
        _receipt,
        subject=st.one_of(
            st.sampled_from(["Read: offer", "Прочитано: КП", "=?utf-8?B?0J/RgNC+?=", "=?bogus?Q?x?="]), texts
        ),
        body=texts,
        report=st.one_of(
            st.sampled_from(
                [
                    "Final-Recipient: rfc822; a@b.ru\r\nOriginal-Message-ID: <deal-1@sales.example.ru>\r\nDisposition: manual-action/MDN-sent-manually; displayed",
                    "Disposition: ; \r\nOriginal-Message-ID:",
                    "Original-Message-ID: <" + "x" * 5000 + ">",
                ]
            ),
            texts,
        ),
        charset=st.sampled_from(["utf-8", "windows-1251", "koi8-r", "x-unknown", ""]),
    ),
)


@PROFILE
@given(raw=receipts)
def test_mime_receipts_parse_or_are_refused_with_a_reason(raw: bytes) -> None:
    try:
        receipt = parse_receipt(raw)
    except NotAReceipt as exc:
        assert str(exc).strip()
        return
    assert receipt.disposition  # a receipt it accepts says what happened to the email
