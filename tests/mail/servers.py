"""Real servers for the mail tests: Dovecot IMAP on a free loopback port with a throwaway
configuration (run as an unprivileged system user), aiosmtpd as the SMTP sink, and a local
server speaking the Telegram Bot API and Slack incoming-webhook formats."""

from __future__ import annotations

import contextlib
import email
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.local_server import free_port

DOVECOT = "/usr/sbin/dovecot"
DOVECOT_USER = "dovecot"
PASSWORD = "test-secret"


def _wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


@dataclass
class Dovecot:
    """A running Dovecot; `add_user` creates a fresh mailbox account (one per test)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        account = _ensure_user(DOVECOT_USER)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "dovecot.conf").write_text(self._config(account))
        # The tree must belong to the unprivileged user that runs every Dovecot process.
        self.root.chmod(0o755)
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
        self.process = subprocess.Popen(
            ["runuser", "-u", DOVECOT_USER, "--", DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"Dovecot did not start: {self.log()}") from None

    def _config(self, account: pwd.struct_passwd) -> str:
        root = self.root
        return "\n".join(
            [
                f"base_dir = {root}/run",
                f"state_dir = {root}/state",
                f"log_path = {root}/dovecot.log",
                "protocols = imap",
                "listen = 127.0.0.1",
                "ssl = no",
                "disable_plaintext_auth = no",
                "auth_mechanisms = plain login",
                f"default_login_user = {DOVECOT_USER}",
                f"default_internal_user = {DOVECOT_USER}",
                f"default_internal_group = {DOVECOT_USER}",
                f"first_valid_uid = {account.pw_uid}",
                f"first_valid_gid = {account.pw_gid}",
                f"mail_location = maildir:{root}/mail/%u",
                # Any user name with this password: a fresh account per test, no reload races.
                "passdb {",
                "  driver = static",
                f"  args = password={PASSWORD}",
                "}",
                "userdb {",
                "  driver = static",
                f"  args = uid={account.pw_uid} gid={account.pw_gid} home={root}/mail/%u",
                "}",
                "service imap-login {",
                "  chroot =",
                "  inet_listener imap {",
                "    address = 127.0.0.1",
                f"    port = {self.port}",
                "  }",
                "  inet_listener imaps {",
                "    port = 0",
                "  }",
                "}",
                "service anvil {",
                "  chroot =",
                "}",
                "",
            ]
        )

    def add_user(self, name: str) -> str:
        self.users[name] = PASSWORD
        return name

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user

    def log(self) -> str:
        path = self.root / "dovecot.log"
        text = path.read_text(errors="replace")[-3000:] if path.exists() else ""
        if self.process is not None and self.process.stderr is not None and self.process.poll() is not None:
            text += self.process.stderr.read().decode(errors="replace")[-2000:]
        return text

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def dovecot_available() -> bool:
    return Path(DOVECOT).exists() and shutil.which("runuser") is not None and os.geteuid() == 0


class SmtpSink:
    """aiosmtpd Controller that keeps every message it receives, with arrival times."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.arrivals: list[float] = []
        self.refuse = False
        self._lock = threading.Condition()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # The moment the message is in: before the sink's own parsing.
        arrived = time.monotonic()
        if self.refuse:
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.arrivals.append(arrived)
            self._lock.notify_all()
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.messages) < count and time.monotonic() < deadline:
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))
            return list(self.messages)


class TcpProxy:
    """A loopback TCP proxy in front of a server; `cut()` drops every open connection at once
    (the client sees EOF, as when a NAT or the network loses the session)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections: list[socket.socket] = []
        self.frozen: set[socket.socket] = set()
        self.accepted = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self.connections += [client, upstream]
                self.accepted += 1
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                if src in self.frozen or dst in self.frozen:
                    continue  # black-holed: neither side hears anything, nothing is closed
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        """Silently drop everything on the open connections (a NAT forgetting the session):
        no FIN, no RST, only silence. New connections work."""
        with self._lock:
            self.frozen.update(self.connections)

    def cut(self) -> None:
        with self._lock:
            connections, self.connections = self.connections, []
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()


# Tags the Bot API accepts with parse_mode=HTML (core.telegram.org/bots/api#html-style).
TELEGRAM_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "span",
    "tg-spoiler",
    "tg-emoji",
    "blockquote",
}


def telegram_entities_problem(body: dict[str, Any]) -> str | None:
    """What the Bot API would refuse in a sendMessage body: text over 4096 characters, or with
    parse_mode=HTML an unsupported or unclosed tag, a link without href, a bare "<" or "&"."""
    from html.parser import HTMLParser

    text = str(body.get("text", ""))
    if not text or len(text) > 4096:
        return "message text is empty" if not text else "message is too long"
    if body.get("parse_mode") != "HTML":
        return None
    problems: list[str] = []
    stack: list[str] = []

    class Check(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in TELEGRAM_TAGS:
                problems.append(f"can't parse entities: Unsupported start tag {tag!r}")
            if tag == "a" and not dict(attrs).get("href"):
                problems.append("can't parse entities: a link without href")
            stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            if not stack or stack.pop() != tag:
                problems.append(f"can't parse entities: Unexpected end tag {tag!r}")

    checker = Check(convert_charrefs=False)
    checker.feed(text)
    checker.close()
    if stack:
        problems.append(f"can't parse entities: unclosed tag {stack[-1]}")
    stripped = re.sub(r"<[^>]*>|&(lt|gt|amp|quot|#\d+);", "", text)
    if "<" in stripped or "&" in stripped:
        problems.append("can't parse entities: unescaped < or &")
    return problems[0] if problems else None


class ChatApi:
    """Telegram Bot API (POST /bot<token>/sendMessage) and a Slack incoming webhook on one local
    server; the first request of each kind fails (429 with retry_after, then 500)."""

    def __init__(self) -> None:
        self.telegram: list[dict[str, Any]] = []
        self.slack: list[dict[str, Any]] = []
        self.failures = {"telegram": [429], "slack": [500]}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind = "telegram" if self.path.startswith("/botTOKEN123/sendMessage") else "slack"
                if kind == "slack" and self.path != "/services/T0/B0/XYZ":
                    self._answer(404, b"no_service", "text/plain")
                    return
                if api.failures[kind]:
                    status = api.failures[kind].pop(0)
                    payload = {"ok": False, "error_code": 429, "parameters": {"retry_after": 1}}
                    self._answer(status, json.dumps(payload).encode(), "application/json")
                    return
                if kind == "telegram":
                    problem = telegram_entities_problem(body)
                    if problem:
                        payload = {"ok": False, "error_code": 400, "description": f"Bad Request: {problem}"}
                        self._answer(400, json.dumps(payload).encode(), "application/json")
                        return
                    if body.get("chat_id") == "bad":
                        payload = {
                            "ok": False,
                            "error_code": 400,
                            "description": "Bad Request: chat not found",
                        }
                        self._answer(400, json.dumps(payload).encode(), "application/json")
                        return
                    api.telegram.append(body)
                    self._answer(
                        200,
                        json.dumps({"ok": True, "result": {"message_id": 1}}).encode(),
                        "application/json",
                    )
                else:
                    api.slack.append(body)
                    self._answer(200, b"ok", "text/plain")

            def _answer(self, status: int, data: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.handler = Handler
        self.url = ""


def seed_crm(database_url: str) -> dict[str, int]:
    from datetime import UTC, datetime

    from hub.store.db import session_scope
    from hub.store.models import Contact, Deal, Rep
    from hub.store.upsert import upsert

    with session_scope(database_url) as session:
        upsert(
            session,
            Rep,
            [
                {"id": 1, "name": "Кузнецова Анна", "email": "rep1@sales.example.ru", "chat_id": "1001"},
                {"id": 2, "name": "Соколов Дмитрий", "email": "rep2@sales.example.ru", "chat_id": None},
            ],
            key=["id"],
        )
        upsert(
            session,
            Contact,
            [
                {
                    "id": 10,
                    "source_ref": "C-10",
                    "name": "Иванов Пётр",
                    "email": "client@client.example.ru",
                    "phone_e164": "+79161234567",
                    "owner_rep_id": 1,
                },
                {
                    "id": 11,
                    "source_ref": "C-11",
                    "name": "Anna Nowak",
                    "email": "anna@client.example.pl",
                    "phone_e164": None,
                    "owner_rep_id": 2,
                },
            ],
            key=["id"],
        )
        upsert(
            session,
            Deal,
            [
                {
                    "id": 20,
                    "source_ref": "D-20",
                    "title": "Поставка оборудования",
                    "stage": "proposal",
                    "contact_id": 10,
                    "rep_id": 1,
                    "opened_at": datetime(2026, 11, 1, tzinfo=UTC),
                }
            ],
            key=["id"],
        )
    return {"rep": 1, "rep2": 2, "contact": 10, "contact_pl": 11, "deal": 20}
