"""HTTP plumbing of the fake Compute server: a quiet loopback server handing JSON requests to ``dispatch``."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.compute_rest import RestApi
from tests.fakes.compute_rules import ApiError
from tests.fakes.http_support import QuietLoopbackServer


class ComputeRequestHandler(BaseHTTPRequestHandler):
    timeout = 30  # a client that stops sending cannot hold a thread forever
    server: ComputeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the test output is not a request log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body()
            status, payload = self.server.fake.dispatch(method, unquote(url.path), query, body)
        except ApiError as exc:
            status, payload = exc.status, exc.payload()
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length == 0:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc


class ComputeHTTPServer(QuietLoopbackServer):
    def __init__(self, fake: RestApi) -> None:
        self.fake = fake
        super().__init__(ComputeRequestHandler)
