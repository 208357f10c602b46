"""The limits `hub serve` puts on each HTTP connection (enforced by hub/server/protocol.py); a
module of its own so that the `hub` command can show the defaults without importing uvicorn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    """Defaults in the range common front proxies use (nginx: 4 x 8 KiB header buffers, 60 s
    timeouts; Apache: 100 header fields)."""

    max_header_bytes: int = 32 * 1024  # request line and all headers together
    max_headers: int = 100
    header_timeout_s: float = 10.0  # from the connection (or the previous answer) to the headers' end
    body_timeout_s: float = 30.0  # from the headers' end to the body's end, however it trickles
