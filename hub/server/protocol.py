"""Limits `hub serve` enforces on the HTTP connection itself, before any route runs: the size
and number of request headers (431) and how long a client may take to send them or its body
(408), so that slow or oversized clients cost neither memory nor connections. uvicorn's own
httptools protocol does the parsing; this subclass only counts and times (uvicorn < 1 pinned)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub.server.limits import ConnectionLimits

# The answers the connection layer gives itself carry the same safety headers as the app's.
_REFUSAL_HEADERS = (
    b"content-type: application/json\r\n"
    b"x-content-type-options: nosniff\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n"
)
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `ConnectionLimits`; built by uvicorn per connection
    (pass `functools.partial(LimitedHttpProtocol, limits=...)` as uvicorn's `http`)."""

    def __init__(self, *args: Any, limits: ConnectionLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or ConnectionLimits()
        self._awaiting_headers = True
        self._header_bytes_seen = 0  # raw bytes received while the headers were incomplete
        self._header_size = 0  # request line and headers as parsed
        self._header_count = 0
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._header_bytes_seen += len(data)
        super().data_received(data)
        # Stop reading headers as soon as they are too big, before they are held whole.
        if (
            self._awaiting_headers
            and not self._refused
            and (
                self._header_bytes_seen > self.limits.max_header_bytes
                or self._header_count > self.limits.max_headers
            )
        ):
            self._refuse(431, "request headers too large")

    # ------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self._header_size = 0
        self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value) + 4
        if self._header_count <= self.limits.max_headers:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_headers = False
        self._header_bytes_seen = 0
        self._cancel(self._header_timer)
        if self._header_size > self.limits.max_header_bytes or self._header_count > self.limits.max_headers:
            self._refuse(431, "request headers too large")
            return
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._awaiting_headers = True
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._awaiting_headers and not self.transport.is_closing():
            self._arm_header_timer()

    # ------------------------------------------------------------ timers and refusals

    def _arm_header_timer(self) -> None:
        self._cancel(self._header_timer)
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self._header_bytes_seen:
            self._refuse(408, "request headers not received in time")
        else:
            self.transport.close()  # an idle connection: nothing to answer

    def _body_timeout(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self._refuse(408, "request body not received in time")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a one-line JSON error and close the connection; a route already
        running for this request sees the client as gone."""
        self._refused = True
        self._cancel_timers()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.transport.is_closing():
            return
        body = b'{"error":"' + message.encode() + b'"}'
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            + _REFUSAL_HEADERS
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
        self.logger.info("refused a request from %s: %s (%d)", self._peer(), message, status)
        self.transport.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else "?"

    def _cancel_timers(self) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._body_timer)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
