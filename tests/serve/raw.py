"""HTTP/1.1 by hand over a socket, for the attacks a polite client library refuses to make:
headers of any bytes and size, bodies that stop half-way, a Host header of the caller's choice."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class RawAnswer:
    status: int | None  # None: the server closed without answering
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent_everything: bool = True  # False: the server stopped the upload before it ended


def parse_answer(data: bytes) -> RawAnswer:
    if not data:
        return RawAnswer(None)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def request_bytes(
    method: str, path: str, headers: Iterable[tuple[str | bytes, str | bytes]], body: bytes = b""
) -> bytes:
    """One request that asks the server to close the connection after answering; with a body,
    its Content-Length unless `headers` give one."""
    headers = list(headers)
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Connection: close"]
    if body and not any(str(name).lower().strip("b'") == "content-length" for name, _ in headers):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    for name, value in headers:
        raw_name = name if isinstance(name, bytes) else name.encode("latin-1")
        raw_value = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(raw_name + b": " + raw_value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(port: int, data: bytes, timeout_s: float = 30, chunk: int = 64 * 1024) -> RawAnswer:
    """Send `data` (in chunks) and read the answer until the server closes. A reader runs beside
    the sender, so an answer the server gives before the upload ends (413, 431) is not lost to
    the reset that follows it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    received: list[bytes] = []

    def read() -> None:
        try:
            while part := sock.recv(65536):
                received.append(part)
        except OSError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent_everything = True
    try:
        for start in range(0, len(data), chunk):
            sock.sendall(data[start : start + chunk])
    except OSError:
        sent_everything = False
    reader.join(timeout_s)
    sock.close()
    answer = parse_answer(b"".join(received))
    answer.sent_everything = sent_everything
    return answer
