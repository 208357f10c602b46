"""Import of Asterisk CDR rows into the CRM: the hub's full path (CSV parse, validation, local
time to UTC, legs grouped into calls, E.164 numbers, rep and contact lookup, phone leads,
call-back tasks, upsert on the call id with the file offset as cursor) beside a bare bulk
insert of the same rows into the same database.

    python -m bench.telephony --rows 1000000 [--database-url postgresql://...]
"""

from __future__ import annotations

import csv
import random
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.baseline import bare_bulk_insert, bench_arguments
from hub.demo import people
from hub.identity.resolve import index_contact
from hub.ingest.telephony import sync_cdr_dir
from hub.settings import TelephonySettings
from hub.store import migrate
from hub.store.db import dispose_engines, session_scope
from hub.store.models import Contact, Rep, TrackingNumber
from schemas.telephony import CDR_FIELDS

EXTENSIONS = [str(101 + n) for n in range(40)]
DIDS = ["74952223344", "74951110001", "74951110002", "74951110003"]
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def seed_store(database_url: str, clients: list[str]) -> None:
    with session_scope(database_url) as session:
        for n, ext in enumerate(EXTENSIONS, start=1):
            session.add(Rep(id=n, name=f"Rep {ext}", extension=ext, phone_e164=f"+7495100{n:04d}"))
        session.flush()  # contacts refer to their owner reps
        session.add_all(
            [
                TrackingNumber(number_e164="+" + DIDS[1], channel="yandex / cpc", campaign="brand"),
                TrackingNumber(number_e164="+" + DIDS[2], channel="google / cpc", campaign="generic"),
            ]
        )
        for n, phone in enumerate(clients):
            contact = Contact(
                source_system="crm", source_ref=f"C{n}", phone_e164=phone, owner_rep_id=1 + n % 40
            )
            session.add(contact)
            session.flush()
            index_contact(session, contact)


def write_cdr(path: Path, rows: int, clients: list[str], seed: int = 3, first_call: int = 0) -> int:
    """A Master.csv of `rows` rows: inbound (some through a queue of two legs), outbound and
    internal calls over several weeks; returns the number of calls."""
    rng = random.Random(seed)
    strangers = [people.ru_mobile(rng)[1:] for _ in range(50_000)]
    known = [c[1:] for c in clients]
    callees = known + strangers[:5000]
    start = datetime(2026, 1, 1, 8, 0)
    written, calls = 0, first_call
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        while written < rows:
            calls += 1
            at = start + timedelta(seconds=calls * 7)
            uid = f"{1767254400 + calls * 7}.{calls}"
            ext = rng.choice(EXTENSIONS)
            kind = rng.random()
            talk = rng.randint(10, 900)
            if kind < 0.30:  # outbound
                legs = [(ext, "8" + rng.choice(callees)[1:], "from-internal", f"SIP/trunk-{calls:08x}")]
                dispositions = [rng.choice(["ANSWERED", "ANSWERED", "NO ANSWER", "BUSY"])]
            elif kind < 0.35:  # internal
                legs = [
                    (
                        ext,
                        rng.choice(EXTENSIONS),
                        "from-internal",
                        f"SIP/{rng.choice(EXTENSIONS)}-{calls:08x}",
                    )
                ]
                dispositions = ["ANSWERED"]
            else:
                caller = rng.choice(known) if rng.random() < 0.3 else rng.choice(strangers)
                did = rng.choice(DIDS)
                dispositions = [rng.choice(["ANSWERED"] * 4 + ["NO ANSWER", "BUSY", "FAILED"])]
                legs = [(caller, did, "from-trunk", f"SIP/{ext}-{calls:08x}")]
                if rng.random() < 0.2:  # a queue: the first rep did not answer
                    legs.insert(0, (caller, did, "from-trunk", f"SIP/{rng.choice(EXTENSIONS)}-{calls:08x}"))
                    dispositions.insert(0, "NO ANSWER")
            for (src, dst, context, dstchannel), disposition in zip(legs, dispositions, strict=True):
                answered = disposition == "ANSWERED"
                billsec = talk if answered else 0
                writer.writerow(
                    [
                        "",
                        src,
                        dst,
                        context,
                        f'"Клиент {calls}" <{src}>',
                        f"SIP/trunk-{calls:08x}" if context == "from-trunk" else f"SIP/{src}-{calls:08x}",
                        dstchannel,
                        "Dial",
                        f"{dstchannel.split('-')[0]},30,tT",
                        at.strftime(TIME_FORMAT),
                        (at + timedelta(seconds=5)).strftime(TIME_FORMAT) if answered else "",
                        (at + timedelta(seconds=5 + billsec)).strftime(TIME_FORMAT),
                        5 + billsec,
                        billsec,
                        disposition,
                        "DOCUMENTATION",
                        uid,
                        f"in-{uid}.wav" if answered else "",
                    ]
                )
                written += 1
    return calls - first_call


def bare_insert(database_url: str, path: Path) -> int:
    """The baseline: the same CSV rows inserted as they are, no parsing beyond csv."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = (dict(zip(CDR_FIELDS, fields, strict=False)) for fields in csv.reader(fh))
        return bare_bulk_insert(database_url, "bench_bare_cdr", CDR_FIELDS, rows)


def main() -> None:
    args = bench_arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cdr"
        folder.mkdir()
        path = folder / "Master.csv"
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        rng = random.Random(5)
        clients = sorted({people.ru_mobile(rng) for _ in range(2000)})
        started = time.perf_counter()
        calls = write_cdr(path, args.rows, clients)
        print(
            f"generated {args.rows:,} CDR rows of {calls:,} calls ({path.stat().st_size / 1e6:.0f} MB) "
            f"in {time.perf_counter() - started:.1f}s"
        )
        migrate.upgrade(url)
        seed_store(url, clients)

        started = time.perf_counter()
        bare = bare_insert(url, path)
        bare_s = time.perf_counter() - started

        settings = TelephonySettings.model_validate(
            {"asterisk": {"cdr_dir": str(folder), "recording_base_url": "https://pbx.example.ru/"}}
        )
        started = time.perf_counter()
        stats = sync_cdr_dir(url, settings, "RU", "Europe/Moscow")
        hub_s = time.perf_counter() - started
        # The next day's file: only it is read.
        grown = write_cdr(folder / "Master-next.csv", 1000, clients, seed=4, first_call=calls)
        started = time.perf_counter()
        rerun = sync_cdr_dir(url, settings, "RU", "Europe/Moscow")
        rerun_s = time.perf_counter() - started
        dispose_engines()

    rows = stats.extra.get("cdr_rows", 0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"database: {url.split(':')[0]}")
    print(f"bare bulk insert : {bare:,} rows in {bare_s:.1f}s = {bare / bare_s:,.0f} rows/s")
    print(
        f"hub CDR ingest   : {rows:,} rows -> {stats.written:,} calls written "
        f"({stats.extra.get('leads_created', 0):,} phone leads, {stats.extra.get('call_back_tasks', 0):,} call-back "
        f"tasks, {stats.extra.get('internal_calls_skipped', 0):,} internal skipped, {stats.quarantined} quarantined) "
        f"in {hub_s:.1f}s = {rows / hub_s:,.0f} rows/s"
    )
    print(
        f"ratio hub/bare rows per second: {rows / hub_s / (bare / bare_s):.3f}  (bare is {hub_s / bare_s:.2f}x faster)"
    )
    print(
        f"next run with one new file of {grown:,} calls: {rerun.extra.get('cdr_rows', 0):,} rows read, "
        f"{rerun.written:,} written, in {rerun_s:.2f}s"
    )
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
