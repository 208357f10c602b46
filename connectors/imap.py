"""Mailbox sources: an IMAP folder read incrementally with a (folder, UIDVALIDITY, last UID)
cursor, BODY.PEEK and IDLE (imapclient); a maildir or mbox for offline use and the demo."""

from __future__ import annotations

import contextlib
import logging
import mailbox
import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.errors import CredentialError, TransientSourceError
from schemas.mail import MailMessage

log = logging.getLogger(__name__)

FETCH_BATCH = 100
DELETED = b"\\Deleted"


class ConnectionDropped(TransientSourceError):
    """The IMAP connection went away (BYE, EOF, a timeout, or IDLE that returned at once)."""


# Everything imapclient, ssl and sockets raise when a connection breaks.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientError,
    OSError,
    socket.timeout,
    TimeoutError,
    ssl.SSLError,
    EOFError,
)


class ImapMailbox:
    """One IMAP account. TLS by default; every socket operation has a timeout, because a dropped
    connection during IDLE otherwise hangs forever. `name` tells the accounts of one hub apart
    (cursors, logs); `credential_setting` is named when the login is refused. The password is
    never part of the object's repr or of any message."""

    def __init__(
        self,
        host: str,
        username: str,
        password: str,
        *,
        port: int = 993,
        security: str = "ssl",
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        batch_size: int = FETCH_BATCH,
        name: str = "",
        credential_setting: str = "the IMAP username and password settings",
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.name = name
        self.credential_setting = credential_setting
        self.security = security
        self.timeout_s = timeout_s
        self.verify_tls = verify_tls
        self.batch_size = batch_size
        self._client: IMAPClient | None = None

    def __repr__(self) -> str:
        return f"ImapMailbox({self.name or self.username!r} at {self.host}:{self.port})"

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            self._client = self.connect()
        return self._client

    def connect(self) -> IMAPClient:
        try:
            client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "ssl",
                ssl_context=self._ssl_context() if self.security == "ssl" else None,
                timeout=self.timeout_s,
                use_uid=True,
            )
            if self.security == "starttls":
                client.starttls(self._ssl_context())
            client.login(self.username, self._password)
        except LoginError:
            raise CredentialError(
                f"IMAP {self.host} refused the login for {self.username!r}: check {self.credential_setting}"
            ) from None
        except NETWORK_ERRORS as exc:
            raise ConnectionDropped(f"cannot connect to IMAP {self.host}:{self.port}: {exc}") from None
        # Aware datetimes for INTERNALDATE rather than naive local time.
        client.normalise_times = False
        return client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except NETWORK_ERRORS:
            with contextlib.suppress(NETWORK_ERRORS):
                client.shutdown()

    def drop(self) -> None:
        """Forget a broken connection without talking to the server."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(NETWORK_ERRORS):
                client.shutdown()

    def folder(self, name: str, move_to: str = "") -> ImapFolderSource:
        return ImapFolderSource(self, name, move_to)

    def sibling(self) -> ImapMailbox:
        """A second connection to the same account (a watcher's IDLE-only connection)."""
        return ImapMailbox(
            self.host,
            self.username,
            self._password,
            port=self.port,
            security=self.security,
            timeout_s=self.timeout_s,
            verify_tls=self.verify_tls,
            batch_size=self.batch_size,
            name=self.name,
            credential_setting=self.credential_setting,
        )

    def watch(self, folder: str, check_s: float) -> IdleSession:
        """IDLE on `folder` (selected read-only) over this connection."""
        try:
            self.client.select_folder(folder, readonly=True)
        except NETWORK_ERRORS as exc:
            self.drop()
            raise ConnectionDropped(f"IMAP connection lost selecting {folder}: {exc}") from None
        return IdleSession(self.client, check_s)


class ImapFolderSource:
    """One folder as a mail source. The cursor is {folder, uidvalidity, last_uid}: a changed
    UIDVALIDITY means the folder was recreated, so it is read again from the start (the store
    keys receipts by their own Message-ID, so nothing is counted twice)."""

    def __init__(self, mailbox_: ImapMailbox, folder: str, move_to: str = "") -> None:
        self.mailbox = mailbox_
        self.folder = folder
        self.move_to = move_to
        # The single-account name stays "imap:<folder>" so existing stores keep their cursors.
        self.name = f"imap:{mailbox_.name}:{folder}" if mailbox_.name else f"imap:{folder}"
        self._where = f"imap:{mailbox_.name}:{folder}" if mailbox_.name else f"imap:{folder}"
        self.rescanned = False

    def select(self) -> int:
        """Select the folder; returns its UIDVALIDITY."""
        client = self.mailbox.client
        info = client.select_folder(self.folder, readonly=not self.move_to)
        _pop_exists(client)  # SELECT's own EXISTS is the folder's size, not news
        return int(info[b"UIDVALIDITY"])

    def announced_new_mail(self) -> bool:
        """Whether the server announced new mail (EXISTS) in an answer to an earlier command
        (a SEARCH or FETCH while mail was landing): such news is not repeated in IDLE."""
        return _pop_exists(self.mailbox.client)

    def batches(self, cursor: dict[str, Any]) -> Iterator[tuple[list[MailMessage], dict[str, Any]]]:
        try:
            yield from self._batches(cursor)
        except NETWORK_ERRORS as exc:
            self.mailbox.drop()
            raise ConnectionDropped(f"IMAP connection lost while reading {self.folder}: {exc}") from None

    def _batches(self, cursor: dict[str, Any]) -> Iterator[tuple[list[MailMessage], dict[str, Any]]]:
        client = self.mailbox.client
        uidvalidity = self.select()
        last_uid = int(cursor.get("last_uid", 0))
        self.rescanned = bool(cursor) and cursor.get("uidvalidity") != uidvalidity
        if self.rescanned:
            log.warning(
                "UIDVALIDITY of %s changed (%s -> %s): reading the folder again",
                self.folder,
                cursor.get("uidvalidity"),
                uidvalidity,
            )
            last_uid = 0
        # `UID n:*` always returns the top message, even below n: filter ourselves.
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        for start in range(0, len(uids), self.mailbox.batch_size):
            chunk = uids[start : start + self.mailbox.batch_size]
            # BODY.PEEK leaves \Seen alone: the rep still sees the receipt as unread.
            data = client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
            messages = []
            for uid in chunk:
                item = data.get(uid)
                if item is None or b"BODY[]" not in item:
                    continue  # expunged between SEARCH and FETCH
                messages.append(self._message(uidvalidity, uid, item))
            yield messages, self.cursor(uidvalidity, chunk[-1])

    def cursor(self, uidvalidity: int, last_uid: int) -> dict[str, Any]:
        return {"folder": self.folder, "uidvalidity": uidvalidity, "last_uid": last_uid}

    def _message(self, uidvalidity: int, uid: int, item: dict[bytes, Any]) -> MailMessage:
        arrived = item.get(b"INTERNALDATE")
        return MailMessage(
            location=f"{self._where}:{uidvalidity}:{uid}",
            uid=uid,
            raw=item[b"BODY[]"],
            arrived_at=_aware(arrived) if isinstance(arrived, datetime) else None,
        )

    def fetch_after(self, last_uid: int, uidvalidity: int) -> FetchResult:
        """The messages above `last_uid` in the selected folder, in one round trip (UID FETCH
        n:* without a SEARCH), for a watcher that has just left IDLE. `more` is True when the
        server announced new mail (EXISTS) while answering: that announcement is not repeated
        once IDLE is entered again, so the caller fetches once more instead of waiting."""
        client = self.mailbox.client
        try:
            data = client.fetch(f"{last_uid + 1}:*", ["BODY.PEEK[]", "INTERNALDATE"])
            more = _pop_exists(client)
        except NETWORK_ERRORS as exc:
            self.mailbox.drop()
            raise ConnectionDropped(f"IMAP connection lost while reading {self.folder}: {exc}") from None
        # `n:*` always includes the top message, even below n: filter ourselves.
        uids = sorted(uid for uid, item in data.items() if uid > last_uid and b"BODY[]" in item)
        messages = [self._message(uidvalidity, uid, data[uid]) for uid in uids]
        cursor = self.cursor(uidvalidity, uids[-1]) if uids else None
        return FetchResult(messages, cursor, more)

    def after_commit(self, messages: list[MailMessage]) -> None:
        """Move processed messages out of the folder when configured: MOVE where the server has
        it, else COPY + \\Deleted + UID EXPUNGE."""
        uids = [m.uid for m in messages if m.uid is not None]
        if not self.move_to or not uids:
            return
        client = self.mailbox.client
        try:
            if not client.folder_exists(self.move_to):
                client.create_folder(self.move_to)
            if client.has_capability("MOVE"):
                client.move(uids, self.move_to)
            else:
                client.copy(uids, self.move_to)
                client.add_flags(uids, [DELETED])
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uids)
                else:
                    client.expunge()
        except NETWORK_ERRORS as exc:
            # The rows and cursor are committed: the messages merely stay where they are.
            log.warning("could not move %d receipts to %s: %s", len(uids), self.move_to, exc)
            self.mailbox.drop()


@dataclass
class FetchResult:
    messages: list[MailMessage]
    cursor: dict[str, Any] | None  # covers `messages`; None when there were none
    more: bool


def _pop_exists(client: IMAPClient) -> bool:
    """Whether the server sent an untagged EXISTS since the last look. imapclient returns only
    the FETCH responses of a fetch; imaplib keeps the others in `untagged_responses` (imapclient
    reads SELECT's answer from there the same way)."""
    untagged = client._imap.untagged_responses
    # RECENT and EXPUNGE are not used, and would pile up over weeks on a long-lived connection.
    untagged.pop("RECENT", None)
    untagged.pop("EXPUNGE", None)
    return bool(untagged.pop("EXISTS", None))


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IdleSession:
    """IMAP IDLE on the selected folder, in three steps so that a watcher can re-arm IDLE before
    it processes what it fetched: `start`, `wait` (any number of times), `done`. A server BYE,
    EOF, or a wait that returns at once with nothing (imapclient #565) raise ConnectionDropped
    so the caller reconnects."""

    def __init__(self, client: IMAPClient, check_s: float) -> None:
        self.client = client
        self.check_s = check_s
        self.active = False

    def start(self) -> None:
        try:
            self.client.idle()
        except NETWORK_ERRORS as exc:
            raise ConnectionDropped(f"IDLE failed: {type(exc).__name__}: {exc}") from None
        self.active = True

    def wait(self, timeout_s: float | None = None) -> IdleNews:
        """Block up to timeout_s (default check_s) for server news; returns at the first."""
        timeout_s = timeout_s or self.check_s
        try:
            started = time.monotonic()
            responses = self.client.idle_check(timeout=timeout_s)
            elapsed = time.monotonic() - started
        except NETWORK_ERRORS as exc:
            raise ConnectionDropped(f"IDLE failed: {type(exc).__name__}: {exc}") from None
        if any(_is_bye(r) for r in responses):
            raise ConnectionDropped("server said BYE during IDLE")
        if not responses and elapsed < timeout_s / 2:
            raise ConnectionDropped(f"IDLE returned after {elapsed:.2f}s with nothing: connection lost")
        return IdleNews(list(responses))

    def done(self) -> IdleNews:
        """End IDLE; returns what the server sent since the last wait."""
        if not self.active:
            return IdleNews([])
        self.active = False
        try:
            more = self.client.idle_done()
        except NETWORK_ERRORS as exc:
            raise ConnectionDropped(f"ending IDLE failed: {type(exc).__name__}: {exc}") from None
        extra = list(more[1]) if isinstance(more, tuple) and len(more) > 1 else []
        # imaplib also files these under untagged_responses; on a connection that only idles
        # nobody reads them there, and they would pile up with every re-issue.
        self.client._imap.untagged_responses.clear()
        return IdleNews(extra)


@dataclass
class IdleNews:
    """Untagged responses received in IDLE."""

    responses: list[Any]

    @property
    def new_mail(self) -> bool:
        # EXISTS (and RECENT) announce mail; flag changes, EXPUNGE and "OK Still here" do not.
        return any(
            isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in self.responses
        )


def _is_bye(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) > 0 and response[0] == b"BYE"


# ---------------------------------------------------------------- offline sources


class MaildirSource:
    """A maildir (new/ and cur/) read in order of arrival; the cursor is the (mtime, key) of the
    last message read."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"maildir:{self.path.name}"

    def batches(self, cursor: dict[str, Any]) -> Iterator[tuple[list[MailMessage], dict[str, Any]]]:
        mark = (int(cursor.get("mtime_ns", -1)), str(cursor.get("key", "")))
        entries = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if entry.is_file() and not entry.name.startswith("."):
                    key = entry.name.split(":")[0]
                    entries.append((entry.stat().st_mtime_ns, key, Path(entry.path)))
        entries.sort()
        todo = [e for e in entries if (e[0], e[1]) > mark]
        for start in range(0, len(todo), FETCH_BATCH):
            chunk = todo[start : start + FETCH_BATCH]
            messages = [
                MailMessage(
                    location=f"maildir:{self.path.name}:{key}",
                    raw=path.read_bytes(),
                    arrived_at=datetime.fromtimestamp(mtime / 1e9, UTC),
                )
                for mtime, key, path in chunk
            ]
            yield messages, {"mtime_ns": chunk[-1][0], "key": chunk[-1][1]}

    def after_commit(self, messages: list[MailMessage]) -> None:
        return None


class MboxSource:
    """An mbox file, append-only: the cursor is how many messages were read."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"mbox:{self.path.name}"

    def batches(self, cursor: dict[str, Any]) -> Iterator[tuple[list[MailMessage], dict[str, Any]]]:
        done = int(cursor.get("count", 0))
        box = mailbox.mbox(self.path, create=False)
        try:
            keys = list(box.keys())[done:]
            for start in range(0, len(keys), FETCH_BATCH):
                chunk = keys[start : start + FETCH_BATCH]
                messages = [
                    MailMessage(location=f"mbox:{self.path.name}:{done + start + i}", raw=box.get_bytes(key))
                    for i, key in enumerate(chunk)
                ]
                yield messages, {"count": done + start + len(chunk)}
        finally:
            box.close()

    def after_commit(self, messages: list[MailMessage]) -> None:
        return None


def file_source(path: str | Path, name: str | None = None) -> MaildirSource | MboxSource:
    """A maildir for a folder, an mbox for a file."""
    return MaildirSource(path, name) if Path(path).is_dir() else MboxSource(path, name)
