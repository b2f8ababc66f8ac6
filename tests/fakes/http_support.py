"""The threaded loopback HTTP server both fake Google endpoints (Compute, metadata) run on."""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietLoopbackServer(ThreadingHTTPServer):
    """A threaded server on ``127.0.0.1:<free port>`` that closes cleanly and ignores hung-up clients."""

    daemon_threads = True
    block_on_close = True  # server_close() joins the request threads

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a killed sandbox) is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
