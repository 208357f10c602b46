"""One way to run a local HTTP server in a thread: every replay server (the demo's CRM replays),
fake API and recorder in the test suite starts through `local_server`, so start-up, quiet logging
of clients that hang up, TLS and shutdown are written once."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for servers started as processes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QuietHttpServer(ThreadingHTTPServer):
    """A threading server that does not print a traceback when a client resets its connection
    (a client that timed out, a fault proxy cutting a body): expected in these tests."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclass
class LocalServer:
    server: ThreadingHTTPServer
    url: str  # scheme://127.0.0.1:port, no trailing slash

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def local_server(
    handler: type[BaseHTTPRequestHandler],
    *,
    port: int = 0,
    tls: tuple[str, str] | None = None,
    **attributes: Any,
) -> Iterator[LocalServer]:
    """Serve `handler` on 127.0.0.1 (a free port unless given) until the block ends.

    `attributes` are set on the server object, where a handler finds its fake API as
    `self.server.<name>`; `tls` is (certificate file, key file) for an HTTPS server."""
    server = QuietHttpServer(("127.0.0.1", port), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalServer(server, f"{scheme}://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
