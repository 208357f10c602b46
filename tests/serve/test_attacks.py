"""`hub serve` probed from outside as an attacker and a careless integrator would (issue 17):
replays with whitespace, huge and numerous headers, odd encodings, pixel floods, slow clients,
a client-supplied Host in redirects, cheap posts of many records. Real uvicorn on loopback."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select

from hub.ingest.mail import record_sent_email, tracking_token
from hub.ingest.mail_pixel import GIF, pixel_url
from hub.ingest.site import sync_webhook_inbox
from hub.store.db import session_scope
from hub.store.models import Lead, MailPixelHit, QuarantineRecord, WebhookInbox
from schemas.mail import SentEmail
from tests.serve.conftest import SECRET, WEBHOOK, inbox_bodies, signature_headers
from tests.serve.process import HubServe, hub_serve
from tests.serve.raw import exchange, request_bytes

THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"


def _lead(marker: str, **fields: object) -> dict[str, object]:
    return {"id": marker, "phone": "+7 916 000-00-01", "submitted_at": "2026-11-20T10:00:00Z", **fields}


def _post(server: HubServe, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        server.url + WEBHOOK,
        data=body,
        headers={**signature_headers(body), "Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


# ---------------------------------------------------------------- 1: several workers


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.add(int(child))
    return found


def _tcp_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the server side of a loopback connection, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            return fields[9]
    return None


def _owner(inode: str, pids: set[int]) -> int | None:
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_the_documented_production_command_starts_two_workers_and_both_answer(
    sqlite_store: str, tmp_path: Path
) -> None:
    settings = {
        "HUB_DATABASE_URL": sqlite_store,
        "HUB_SITE__WEBHOOK_SECRET": SECRET,
        "HUB_DATA_DIR": str(tmp_path),
    }
    with hub_serve(settings, tmp_path / "serve.log", "--workers", "2") as server:
        answered: set[int] = set()
        held: list[socket.socket] = []
        for _ in range(300):
            # A new connection each time; the ones answered stay open, so the next accept() can
            # land in the other worker.
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            held.append(sock)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            inode = _tcp_inode(server.port, sock.getsockname()[1])
            assert inode is not None
            owner = _owner(inode, _children(server.process.pid))
            assert owner is not None, "the answer came from a process that is not a worker"
            answered.add(owner)
            if len(answered) == 2:
                break
        for sock in held:
            sock.close()
        assert len(answered) == 2, f"only worker {answered} answered {len(held)} connections"


# ---------------------------------------------------------------- 2: replays


def _whitespace_variants(count: int) -> Iterator[tuple[str, str]]:
    """(prefix, suffix) pairs of whitespace that str.strip() removes."""
    blanks = [" ", "\t", "\xa0", "\x85"]
    pairs = [("", "".join(s)) for n in (1, 2, 3) for s in itertools.product(blanks, repeat=n)]
    pairs += [("".join(p), "") for n in (1, 2) for p in itertools.product(blanks, repeat=n)]
    yield from pairs[:count]


def test_a_captured_post_resent_with_whitespace_around_the_signature_is_stored_once(
    server: HubServe, shared_store: str
) -> None:
    marker = f"ws-{uuid.uuid4().hex[:8]}"
    body = json.dumps(_lead(marker)).encode()
    signed = signature_headers(body)
    statuses = []
    for prefix, suffix in _whitespace_variants(100):
        headers = {**signed, "X-Hub-Signature": prefix + signed["X-Hub-Signature"] + suffix, "Host": "x"}
        statuses.append(exchange(server.port, request_bytes("POST", WEBHOOK, headers.items(), body)).status)
    assert len(statuses) == 100 and set(statuses) == {202}
    assert len(inbox_bodies(shared_store, marker.encode())) == 1


# ---------------------------------------------------------------- 3: headers


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_an_eight_megabyte_header_is_refused_with_431_before_it_is_read(
    server: HubServe, shared_store: str
) -> None:
    marker = f"ua-{uuid.uuid4().hex[:8]}"
    body = json.dumps(_lead(marker)).encode()
    headers = [("Host", "x"), *signature_headers(body).items(), ("User-Agent", "A" * 8_000_000)]
    peak_before = _peak_rss_kib(server.process.pid)
    answer = exchange(server.port, request_bytes("POST", WEBHOOK, headers, body))
    assert answer.status == 431
    assert inbox_bodies(shared_store, marker.encode()) == []
    # The header was never held whole: the server's peak memory did not grow by its size.
    assert _peak_rss_kib(server.process.pid) - peak_before < 4_000


def test_five_thousand_headers_are_refused_with_431(server: HubServe, shared_store: str) -> None:
    marker = f"many-{uuid.uuid4().hex[:8]}"
    body = json.dumps(_lead(marker)).encode()
    headers = [("Host", "x"), *signature_headers(body).items()]
    headers += [(f"X-Pad-{n}", "v") for n in range(5000)]
    assert exchange(server.port, request_bytes("POST", WEBHOOK, headers, body)).status == 431
    assert inbox_bodies(shared_store, marker.encode()) == []


def test_only_allow_listed_headers_are_stored_and_bounded(server: HubServe, shared_store: str) -> None:
    marker = f"hdr-{uuid.uuid4().hex[:8]}"
    body = json.dumps(_lead(marker)).encode()
    response = _post(
        server,
        body,
        {
            "User-Agent": "B" * 6000,
            "Cookie": "session=abc",
            "Authorization": "Bearer stolen",
            "X-Api-Key": "k",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    assert response.status_code == 202
    with session_scope(shared_store) as session:
        (headers,) = session.scalars(
            select(WebhookInbox.headers).where(WebhookInbox.id == response.json()["id"])
        )
    assert set(headers) <= {"content-type", "user-agent", "x-forwarded-for", "x-hub-timestamp"}
    assert headers["x-forwarded-for"] == "203.0.113.7"
    assert all(len(value) <= 512 for value in headers.values())


# ---------------------------------------------------------------- 4: encodings


def test_bodies_in_other_charsets_keep_their_bytes_and_are_read_by_content_or_quarantined(
    server: HubServe, shared_store: str
) -> None:
    def cp1251(marker: str, name: str, phone: str) -> bytes:
        return json.dumps(_lead(marker, name=name, phone=phone), ensure_ascii=False).encode("cp1251")

    declared = cp1251("cp-declared", "Иван Петров", "+7 916 000-00-11")
    undeclared = cp1251("cp-detected", "Анна Смирнова", "+7 916 000-00-12")
    # A site that says UTF-8 and sends Windows-1251 (a hand-built body): read by its content.
    mislabelled = cp1251("cp-mislabelled", "Пётр Сидоров", "+7 916 000-00-13")
    # 0x98 is no character in Windows-1251, and the bytes are not UTF-8: not text at all.
    unreadable = cp1251("cp-unreadable", "Ольга", "+7 916 000-00-14").replace(
        "Ольга".encode("cp1251"), b"\x98\xcf"
    )
    for body, content_type in [
        (declared, "application/json; charset=windows-1251"),
        (undeclared, "application/json"),
        (mislabelled, "application/json; charset=utf-8"),
        (unreadable, "application/json"),
    ]:
        assert _post(server, body, {"Content-Type": content_type}).status_code == 202
    assert inbox_bodies(shared_store, b"cp-declared") == [declared]
    assert inbox_bodies(shared_store, b"cp-unreadable") == [unreadable]

    sync_webhook_inbox(shared_store, "RU")
    with session_scope(shared_store) as session:
        names = dict(
            session.execute(select(Lead.source_ref, Lead.name).where(Lead.source_ref.like("cp-%"))).all()
        )
        quarantined = session.scalars(
            select(QuarantineRecord).where(QuarantineRecord.source == "site_webhook")
        ).all()
    assert names == {
        "cp-declared": "Иван Петров",
        "cp-detected": "Анна Смирнова",
        "cp-mislabelled": "Пётр Сидоров",
    }
    (unreadable_row,) = [q for q in quarantined if q.raw_bytes == unreadable]
    assert "not text" in unreadable_row.error and "cp1251" in unreadable_row.error


# ---------------------------------------------------------------- 10: the pixel


def _sent_with_token(database_url: str, message_id: str) -> str:
    with session_scope(database_url) as session:
        record_sent_email(
            session,
            SentEmail(
                message_id=message_id,
                from_addr="rep1@sales.example.ru",
                to_addrs=["client@client.example.ru"],
                subject="Offer",
                sent_at=datetime.now(UTC) - timedelta(hours=1),
            ),
        )
        token = tracking_token(session, message_id)
    assert token is not None
    return token


def _pixel_rows(database_url: str, message_id: str) -> list[MailPixelHit]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(MailPixelHit).where(MailPixelHit.message_id == message_id)))


def test_pixel_answers_known_and_unknown_tokens_by_one_path_and_counts_repeats_in_one_row(
    server: HubServe, shared_store: str
) -> None:
    message_id = f"<px-{uuid.uuid4().hex[:8]}@sales.example.ru>"
    token = _sent_with_token(shared_store, message_id)
    unknown = "u" * len(token)
    # The store is locked for writing: an answer that waited for a store write would hang here.
    locker = sqlite3.connect(shared_store.removeprefix("sqlite:///"), timeout=1)
    locker.execute("BEGIN IMMEDIATE")
    try:
        for fetched in (token, unknown):
            answer = requests.get(
                server.url + pixel_url("", fetched), headers={"User-Agent": THUNDERBIRD}, timeout=5
            )
            assert answer.status_code == 200 and answer.content == GIF
    finally:
        locker.rollback()
        locker.close()
    for _ in range(150):
        requests.get(server.url + pixel_url("", token), headers={"User-Agent": THUNDERBIRD}, timeout=5)
    for _ in range(49):
        requests.head(server.url + pixel_url("", token), headers={"User-Agent": THUNDERBIRD}, timeout=5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = _pixel_rows(shared_store, message_id)
        if rows and rows[0].fetches == 200:
            break
        time.sleep(0.2)
    assert len(rows) == 1 and rows[0].fetches == 200 and rows[0].machine_fetches == 49
    with session_scope(shared_store) as session:
        # The guessed token left no trace: this test's message is the only one with pixel rows.
        assert session.scalar(select(func.count()).select_from(MailPixelHit)) == 1


# ---------------------------------------------------------------- 11: slow clients


def test_clients_that_stop_sending_are_cut_off_by_the_server(sqlite_store: str, tmp_path: Path) -> None:
    settings = {
        "HUB_DATABASE_URL": sqlite_store,
        "HUB_SITE__WEBHOOK_SECRET": SECRET,
        "HUB_DATA_DIR": str(tmp_path),
    }
    with hub_serve(
        settings, tmp_path / "serve.log", "--header-timeout", "1", "--body-timeout", "1"
    ) as server:
        half_headers, half_bodies = [], []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            sock.sendall(b"POST /webhooks/site/leads HTTP/1.1\r\nHost: x\r\nX-Hub-Time")
            half_headers.append(sock)
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            sock.sendall(
                request_bytes("POST", WEBHOOK, [("Host", "x"), ("Content-Length", "1000")]) + b"{" * 500
            )
            half_bodies.append(sock)
        for sock in half_headers + half_bodies:
            answer = b""
            try:
                while part := sock.recv(65536):  # until the server closes; a socket timeout fails the test
                    answer += part
            except ConnectionResetError:
                pass
            sock.close()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        # Still serving.
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200


# ---------------------------------------------------------------- 12: trailing slash


def test_a_trailing_slash_is_not_redirected_to_a_host_the_caller_named(server: HubServe) -> None:
    body = json.dumps(_lead("slash")).encode()
    for path in (WEBHOOK + "/", "/healthz/"):
        headers = [("Host", "evil.example"), *signature_headers(body).items()]
        answer = exchange(
            server.port, request_bytes("POST" if path.startswith(WEBHOOK) else "GET", path, headers, body)
        )
        assert answer.status == 404 and "location" not in answer.headers


# ---------------------------------------------------------------- 13: records per post


def test_a_post_with_more_records_than_the_cap_is_refused_with_413(sqlite_store: str, tmp_path: Path) -> None:
    settings = {
        "HUB_DATABASE_URL": sqlite_store,
        "HUB_SITE__WEBHOOK_SECRET": SECRET,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_SITE__WEBHOOK_MAX_RECORDS": "100",
    }
    with hub_serve(settings, tmp_path / "serve.log") as server:
        cheap = json.dumps({"leads": [{}] * 10_000}, separators=(",", ":")).encode()
        assert len(cheap) < 31_000
        refused = _post(server, cheap)
        assert refused.status_code == 413 and "HUB_SITE__WEBHOOK_MAX_RECORDS" in refused.json()["error"]
        hundred = json.dumps({"leads": [_lead(f"cap-{n}") for n in range(100)]}).encode()
        assert _post(server, hundred).status_code == 202
    with session_scope(sqlite_store) as session:
        assert session.scalar(select(func.count()).select_from(WebhookInbox)) == 1


# ---------------------------------------------------------------- security headers


def test_every_answer_carries_the_security_headers_and_no_server_banner(server: HubServe) -> None:
    body = json.dumps(_lead("hdrs")).encode()
    answers = {
        "accepted": _post(server, body),
        "refused": requests.post(server.url + WEBHOOK, data=body, timeout=10),
        "not found": requests.get(server.url + "/nothing-here", timeout=10),
        "pixel": requests.get(server.url + pixel_url("", "p" * 32), timeout=10),
        "health": requests.get(server.url + "/healthz", timeout=10),
    }
    assert answers["accepted"].status_code == 202 and answers["refused"].status_code == 401
    for name, answer in answers.items():
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", name
        assert "server" not in {k.lower() for k in answer.headers}, name
    for name in ("accepted", "refused", "health"):
        assert answers[name].headers["Cache-Control"] == "no-store", name
    assert answers["pixel"].headers["Cache-Control"].startswith("no-store")
    raw = exchange(server.port, request_bytes("GET", "/healthz", [("Host", "x"), ("X-Pad", "p" * 70_000)]))
    assert raw.status == 431 and raw.headers.get("x-content-type-options") == "nosniff"
