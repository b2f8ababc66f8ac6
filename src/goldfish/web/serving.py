"""An ASGI app served by uvicorn on a loopback port in a background thread (tests and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

import uvicorn
from starlette.types import ASGIApp

START_SECONDS = 20.0


class ThreadedServer:
    """Serves ``app`` on ``127.0.0.1`` (a free port unless one is given) while the ``with`` block runs.

    Args:
        app: The ASGI app.
        port: The port; 0 picks a free one.
    """

    def __init__(self, app: ASGIApp, port: int = 0):
        if port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="goldfish-web", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the web server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
