"""A fake Secret Manager REST API on loopback: ``versions.access`` of the latest version only.

What it answers follows the public REST reference of Secret Manager v1
(https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access):
``GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access`` returns
``{"name": ".../versions/N", "payload": {"data": <base64>}}``; a secret that does not exist is
HTTP 404 with status ``NOT_FOUND``; a secret the caller may not read is HTTP 403
``PERMISSION_DENIED``. Point ``gce.secret_manager_endpoint`` at :attr:`FakeSecretManager.endpoint`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http_support import QuietLoopbackServer

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")


class FakeSecretManager:
    """Secrets by (project, name); ``denied`` names answer PERMISSION_DENIED; reads are recorded."""

    def __init__(self, project: str = "fake-project") -> None:
        self.project = project
        self.secrets: dict[str, str] = {}
        self.denied: set[str] = set()
        self.reads: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = fake.answer(self.path.split("?", 1)[0])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = QuietLoopbackServer(Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        found = _ACCESS.match(path)
        if found is None:
            return 404, _error(404, "NOT_FOUND", f"Unknown path {path}")
        project, name, version = found.groups()
        self.reads.append(name)
        if name in self.denied:
            return 403, _error(403, "PERMISSION_DENIED", f"Permission denied on secret {name}")
        if project != self.project or name not in self.secrets or version != "latest":
            return 404, _error(404, "NOT_FOUND", f"Secret [projects/{project}/secrets/{name}] not found")
        data = base64.b64encode(self.secrets[name].encode()).decode()
        return 200, {"name": f"projects/{project}/secrets/{name}/versions/1", "payload": {"data": data}}


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
