"""A fake GCE metadata server for one instance, reached through ``GCE_METADATA_HOST``.

It stands for Google's metadata server as documented publicly (``/computeMetadata/v1/...``):

* every request must carry ``Metadata-Flavor: Google`` (else 403); every response carries
  ``Metadata-Flavor: Google`` and an ``ETag`` header;
* ``GET /computeMetadata/v1/instance/attributes/<key>`` -> the value as text (404 when absent);
  ``GET .../instance/attributes/`` lists the keys, ``?recursive=true`` gives them as JSON;
* ``?wait_for_change=true`` blocks until the value's etag differs from ``last_etag`` (returns at
  once when it already differs) or, without ``last_etag``, until the next change; ``timeout_sec``
  bounds the wait, after which the current value (or 404) is returned with its etag, as on GCE;
* ``instance/preempted`` -> ``TRUE``/``FALSE`` with the same wait semantics;
* ``instance/name``, ``instance/zone`` (``projects/123456/zones/<zone>``), ``instance/id``,
  ``instance/hostname``, ``project/project-id``, ``project/numeric-project-id``;
  ``instance/service-accounts/default/token`` (:data:`FAKE_ACCESS_TOKEN`) and ``.../email`` only
  when the instance has a service account: a VM created without one has no
  ``service-accounts/`` entries and gets no token (Compute Engine docs, "Service accounts" /
  "About VM metadata": the token comes from the service account attached to the VM).

Each request is served on its own thread, so a blocking wait never holds up other requests;
``stop()`` wakes every waiter and joins the serving threads.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_support import QuietLoopbackServer

PREFIX = "/computeMetadata/v1/"
NUMERIC_PROJECT_ID = "123456"
FAKE_ACCESS_TOKEN = "fake-token"  # noqa: S105 - the simulator's only token (the registry accepts it)
_PREEMPTED = "\x00preempted"  # the store key of instance/preempted (no attribute can be named so)
_ATTRIBUTES_DIR = "instance/attributes/"


class _Store:
    """Values with per-key etags and a condition that waiters block on."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values: dict[str, str] = dict(values)
        self._versions: dict[str, int] = {}
        self._changed = threading.Condition()
        self.stopped = False
        self.waiting = 0

    def etag(self, key: str) -> str:
        with self._changed:
            return self._etag_locked(key)

    def _etag_locked(self, key: str) -> str:
        version = self._versions.get(key, 0)
        present = key in self._values
        digest = hashlib.sha1(f"{key}\x00{version}\x00{present}".encode(), usedforsecurity=False)
        return digest.hexdigest()[:16]

    def get(self, key: str) -> tuple[str | None, str]:
        with self._changed:
            return self._values.get(key), self._etag_locked(key)

    def set(self, key: str, value: str | None) -> None:
        with self._changed:
            if value is None:
                if key not in self._values:
                    return
                del self._values[key]
            else:
                if self._values.get(key) == value:
                    return
                self._values[key] = value
            self._versions[key] = self._versions.get(key, 0) + 1
            self._changed.notify_all()

    def attributes(self) -> dict[str, str]:
        with self._changed:
            return {k: v for k, v in self._values.items() if k != _PREEMPTED}

    def wait_for_change(
        self, key: str, last_etag: str | None, timeout: float | None
    ) -> tuple[str | None, str]:
        """Block until ``key``'s etag differs from ``last_etag`` (or the current one), bounded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            baseline = last_etag if last_etag is not None else self._etag_locked(key)
            self.waiting += 1
            try:
                while self._etag_locked(key) == baseline and not self.stopped:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._changed.wait(remaining)
            finally:
                self.waiting -= 1
            return self._values.get(key), self._etag_locked(key)

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    timeout = 30  # a client that stops sending cannot hold a thread forever
    server: _MetadataHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the test output is not a request log."""

    def do_GET(self) -> None:
        if self.headers.get("Metadata-Flavor", "").lower() != "google":
            self._reply(403, "Missing required header: Metadata-Flavor: Google\n", etag="0")
            return
        url = urlsplit(self.path)
        if not url.path.startswith(PREFIX):
            self._reply(404, "Not found\n", etag="0")
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.fake.handle(self, url.path[len(PREFIX) :], query)

    def _reply(self, status: int, body: str, *, etag: str, content_type: str = "application/text") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("ETag", etag)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _MetadataHTTPServer(QuietLoopbackServer):
    def __init__(self, fake: FakeMetadataServer) -> None:
        self.fake = fake
        super().__init__(_Handler)


class FakeMetadataServer:
    """One instance's metadata server on ``127.0.0.1:<free port>``."""

    def __init__(
        self,
        *,
        instance_name: str,
        zone: str,
        project_id: str = "fake-project",
        attributes: dict[str, str] | None = None,
        service_account: str | None = "default",
    ) -> None:
        self.instance_name = instance_name
        self.service_account = service_account
        self.zone = zone
        self.project_id = project_id
        self.instance_id = str(
            int(hashlib.sha1(instance_name.encode(), usedforsecurity=False).hexdigest()[:15], 16)
        )
        self._store = _Store(dict(attributes or {}))
        self._store.set(_PREEMPTED, "FALSE")
        self._server: _MetadataHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind a free loopback port and serve on a background thread."""
        if self._server is not None:
            return
        self._server = _MetadataHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-metadata-{self.instance_name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Wake every waiter, stop serving and join the threads (idempotent)."""
        self._store.stop()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the value for ``GCE_METADATA_HOST``."""
        if self._server is None:
            raise RuntimeError("FakeMetadataServer is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    # -- test controls -----------------------------------------------------------------------

    def set_attribute(self, key: str, value: str | None) -> None:
        """Set (or, with None, delete) an attribute; bumps its etag and wakes waiters."""
        self._store.set(key, value)

    def set_preempted(self, flag: bool) -> None:
        """Flip ``instance/preempted`` (``TRUE``/``FALSE``)."""
        self._store.set(_PREEMPTED, "TRUE" if flag else "FALSE")

    def attributes(self) -> dict[str, str]:
        """A snapshot of the current attributes."""
        return self._store.attributes()

    @property
    def waiters(self) -> int:
        """How many ``wait_for_change`` requests are blocked right now (e.g. an agent awaiting a job)."""
        return self._store.waiting

    @property
    def preempted(self) -> bool:
        """Whether ``instance/preempted`` reads ``TRUE``."""
        return self._store.get(_PREEMPTED)[0] == "TRUE"

    # -- request handling (called on the server's threads) -----------------------------------

    def handle(self, handler: _Handler, path: str, query: dict[str, str]) -> None:
        """Answer one GET for ``path`` (relative to ``/computeMetadata/v1/``)."""
        if path.startswith(_ATTRIBUTES_DIR) and path != _ATTRIBUTES_DIR:
            self._answer_watchable(handler, path[len(_ATTRIBUTES_DIR) :], query)
        elif path == "instance/preempted":
            self._answer_watchable(handler, _PREEMPTED, query)
        elif path == _ATTRIBUTES_DIR:
            self._answer_attribute_dir(handler, query)
        else:
            self._answer_static(handler, path)

    def _answer_watchable(self, handler: _Handler, key: str, query: dict[str, str]) -> None:
        if query.get("wait_for_change", "").lower() == "true":
            timeout = _timeout(query.get("timeout_sec"))
            value, etag = self._store.wait_for_change(key, query.get("last_etag"), timeout)
        else:
            value, etag = self._store.get(key)
        if value is None:
            handler._reply(404, "Not found\n", etag=etag)
        else:
            handler._reply(200, value, etag=etag)

    def _answer_attribute_dir(self, handler: _Handler, query: dict[str, str]) -> None:
        attributes = self._store.attributes()
        etag = hashlib.sha1(
            json.dumps(attributes, sort_keys=True).encode(), usedforsecurity=False
        ).hexdigest()[:16]
        if query.get("recursive", "").lower() == "true":
            handler._reply(200, json.dumps(attributes), etag=etag, content_type="application/json")
        else:
            handler._reply(200, "".join(f"{key}\n" for key in sorted(attributes)), etag=etag)

    def _answer_static(self, handler: _Handler, path: str) -> None:
        value = self._static_values().get(path)
        if value is None:
            handler._reply(404, "Not found\n", etag="0")
            return
        content_type = "application/json" if value.startswith("{") else "application/text"
        etag = hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()[:16]
        handler._reply(200, value, etag=etag, content_type=content_type)

    def _static_values(self) -> dict[str, str]:
        values = {
            "instance/name": self.instance_name,
            "instance/hostname": f"{self.instance_name}.{self.zone}.c.{self.project_id}.internal",
            "instance/zone": f"projects/{NUMERIC_PROJECT_ID}/zones/{self.zone}",
            "instance/id": self.instance_id,
            "project/project-id": self.project_id,
            "project/numeric-project-id": NUMERIC_PROJECT_ID,
        }
        if self.service_account is not None:
            token = {"access_token": FAKE_ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
            values["instance/service-accounts/default/token"] = json.dumps(token)
            values["instance/service-accounts/default/email"] = self.service_account
        return values


def _timeout(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None
