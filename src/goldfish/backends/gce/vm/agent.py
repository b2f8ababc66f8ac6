"""The Goldfish VM agent: runs stage jobs on a Compute Engine VM (standard library only).

Shipped to the VM as the ``goldfish-agent`` metadata value and started by ``startup.sh`` as
``python3 agent.py`` (Python 3.9 or newer). The contract it implements is
``shared/spec/gce-protocol.md``; the inside (job.json's extra fields, the agent's life) is
``backends/gce/README.md``. In short, per VM:

1. read ``goldfish-warm`` (absent on a cold VM) and the ``goldfish-job`` pointer
   ``{"stage_run_id", "attempt", "job_uri"}`` from the metadata server;
2. per job: download and validate ``job.json`` (a job that fails validation is refused with
   ``failure.json`` and never executed) → ``ack.json`` → heartbeat + log-sync thread and a
   preemption watcher → stage the bundle and the inputs → GPU check → ``docker pull`` →
   the job's ``docker run`` argv → upload the declared outputs → ``exit_code.txt`` (always the
   last object written). Failures around the stage write ``failure.json`` (``infra_error``)
   instead of an exit code; a preemption notice kills the container, flushes the logs, writes
   ``preempted.json`` and ends the agent;
3. a cold VM powers itself off after its job; a warm VM reports ``idle`` in its state object
   and waits for the next job until its idle deadline, then powers off.

Every URI comes from job.json (or the metadata); every command is an argv list (never a shell);
secret values only ever reach the environment of the ``docker run`` process.

Environment:
    GCE_METADATA_HOST: the metadata server (``host[:port]``; default ``metadata.google.internal``).
    STORAGE_EMULATOR_HOST: a Cloud Storage emulator (base URL or ``host:port``); no auth then.
    GOLDFISH_AGENT_JOB_ROOT: for sandboxes and tests only: the folder job folders must live in
        instead of :data:`JOB_ROOT`.

The server imports :data:`JOB_ROOT`, :data:`SCHEMA_VERSION` and :func:`job_dir` so both sides
agree on where a job lives; nothing else of this module is imported by the server.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import logging
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, TypeVar

JOB_ROOT = "/var/lib/goldfish/jobs"
SCHEMA_VERSION = 1

JOB_ROOT_ENV = "GOLDFISH_AGENT_JOB_ROOT"
METADATA_HOST_ENV = "GCE_METADATA_HOST"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
DEFAULT_METADATA_HOST = "metadata.google.internal"
GCS_BASE = "https://storage.googleapis.com"

JOB_KEY = "instance/attributes/goldfish-job"
WARM_KEY = "instance/attributes/goldfish-warm"
PREEMPTED_KEY = "instance/preempted"
TOKEN_KEY = "instance/service-accounts/default/token"  # noqa: S105 - a metadata path

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # transient HTTP errors: then one last try
PULL_RETRY_DELAYS = (5.0, 15.0)
PULL_TIMEOUT_SECONDS = 1800
RESUMABLE_THRESHOLD = 8 * 1024 * 1024  # larger uploads use a resumable session
RESUMABLE_CHUNK = 32 * 256 * 1024  # a multiple of 256 KiB, as GCS requires
COPY_CHUNK = 1024 * 1024
FIRST_JOB_WAIT_SECONDS = 600  # a cold VM without a job waits this long, then powers off
JOB_WATCH_SECONDS = 60  # one metadata wait-for-change request at most
PREEMPT_WATCH_SECONDS = 30
PREEMPT_FLUSH_WAIT_SECONDS = 120
PREEMPT_SYNC_WAIT_SECONDS = 10  # a preempted VM is switched off about 30 s after the notice
REGISTRY_USER = "oauth2accesstoken"  # Artifact Registry: the token is the password of this user
THREAD_JOIN_SECONDS = 120
GPU_POLL_SECONDS = 5.0
DEFAULT_GPU_WAIT_SECONDS = 600.0
TIMEOUT_GRACE_SECONDS = 60  # past timeout_seconds: the stop file, then a kill after KILL_GRACE
KILL_GRACE_SECONDS = 30
WAIT_TICK_SECONDS = 0.5
MAX_REASON = 2000
MAX_WARM_IDLE_SECONDS = 7 * 24 * 3600

OCTET = "application/octet-stream"  # JSON objects too: the emulator parses application/json bodies
TEXT = "text/plain; charset=utf-8"
_SESSION_OK = (200, 201, 308)  # a resumable session: done, or "resume incomplete"

_STAGE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
_SIGNAL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")
_GS_URI = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/([^\x00\r\n]{1,1024})$")
REQUIRED_LOGS = ("stdout", "stderr", "metrics", "exit_code", "heartbeat", "ack", "failure", "preempted")
OPTIONAL_LOGS = ("stage_heartbeat", "svs_stats")
LOG_FILES = (
    ("stdout.log", "stdout"),
    ("stderr.log", "stderr"),
    ("metrics.jsonl", "metrics"),
    ("heartbeat.json", "stage_heartbeat"),
    ("svs_stats.json", "svs_stats"),  # output statistics, written before the exit code
)
JOB_SUBDIRS = ("code", "config", "outputs", "logs", "control", "work")  # recreated per job; inputs kept
WRITABLE_SUBDIRS = ("outputs", "logs", "work")  # the container's non-root user writes here
BUNDLE_TOP_LEVEL = ("code", "config")
# Options a job's docker run may never carry (the server's builder never emits them).
FORBIDDEN_DOCKER_OPTIONS = (
    "--privileged",
    "--cap-add",
    "--device",
    "--volume",
    "-v",
    "--volumes-from",
    "--detach",
    "-d",
    "--pid",
    "--userns",
)

log = logging.getLogger("goldfish-agent")
T = TypeVar("T")


def job_dir(stage_run_id: str, attempt: int) -> str:
    """The folder on the VM holding one attempt of a stage run (the server imports this)."""
    return f"{JOB_ROOT}/{stage_run_id}/a{attempt}"


def iso_utc(at: float | None = None) -> str:
    """``at`` (default: now) as UTC ISO-8601 with a ``Z``, e.g. ``2024-05-01T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


# -- errors ------------------------------------------------------------------------------------


class AgentFailure(Exception):
    """A failure around the stage: reported as ``failure.json`` with kind ``infra_error``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobRefused(AgentFailure):
    """A job (or pointer, or warm config) that fails validation: it is never executed."""


class UnsafeFile(AgentFailure):
    """A path the agent will not read or upload (a link, a device, a FIFO)."""


class HttpError(AgentFailure):
    """An HTTP request that did not succeed; ``status`` is 0 for connection errors."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class TransientError(HttpError):
    """A 5xx, 429 or connection error: worth retrying."""


class Preempted(Exception):
    """Raised on the job's thread once the preemption watcher has taken over."""


# -- HTTP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects (and GCS's 308 "resume incomplete") are answers, not hops to follow."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        """Never follow."""
        return None


def build_opener(*, use_proxy: bool) -> urllib.request.OpenerDirector:
    """A urllib opener that never follows redirects (and ignores proxies unless ``use_proxy``)."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if not use_proxy:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _lower(headers: Any) -> dict[str, str]:
    return {str(key).lower(): str(value) for key, value in (headers.items() if headers else [])}


def http_request(
    url: str, *, data: bytes | None = None, method: str = "GET", headers: Mapping[str, str] | None = None
) -> urllib.request.Request:
    """A request for an ``http(s)://`` URL (a session URL a server sent back included); no other scheme.

    Raises:
        HttpError: for any other scheme.
    """
    if not url.startswith(("http://", "https://")):
        raise HttpError(0, f"refusing a non-HTTP URL: {url[:100]!r}")
    return urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310


def http_call(
    opener: urllib.request.OpenerDirector,
    method: str,
    url: str,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One request; any HTTP status is a :class:`Reply`, a connection error a :class:`TransientError`."""
    request = http_request(url, data=data, method=method, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return Reply(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as err:
        try:
            body = err.read()
        except (OSError, http.client.HTTPException):
            body = b""
        return Reply(err.code, _lower(err.headers), body)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise TransientError(0, f"{method} {_short_url(url)}: {exc}") from exc


def _short_url(url: str) -> str:
    return url.split("?", 1)[0][:300]


def check_reply(reply: Reply, what: str, ok: tuple[int, ...] = (200, 201, 204)) -> Reply:
    """``reply`` if its status is in ``ok``; else :class:`TransientError` or :class:`HttpError`."""
    if reply.status in ok:
        return reply
    detail = reply.body[:300].decode("utf-8", "replace").strip()
    message = f"{what}: HTTP {reply.status} {detail}".strip()
    if reply.status == 429 or reply.status >= 500:
        raise TransientError(reply.status, message)
    raise HttpError(reply.status, message)


def retrying(what: str, action: Callable[[], T]) -> T:
    """``action()``, retried with backoff while it raises :class:`TransientError` (bounded)."""
    for delay in RETRY_DELAYS:
        try:
            return action()
        except TransientError as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, exc.reason, delay)
            time.sleep(delay)
    return action()


# -- metadata server ---------------------------------------------------------------------------


class Metadata:
    """The instance's metadata server (``/computeMetadata/v1/``, header ``Metadata-Flavor``)."""

    def __init__(self, host: str) -> None:
        self._base = f"http://{host}/computeMetadata/v1/"
        self._opener = build_opener(use_proxy=False)

    def fetch(
        self, path: str, query: Mapping[str, str] | None = None, timeout: float = 15.0
    ) -> tuple[str | None, str]:
        """``(value, etag)`` of ``path``; the value is None when the server answers 404."""
        url = self._base + path + ("?" + urllib.parse.urlencode(dict(query)) if query else "")

        def once() -> tuple[str | None, str]:
            reply = http_call(
                self._opener, "GET", url, headers={"Metadata-Flavor": "Google"}, timeout=timeout
            )
            etag = reply.headers.get("etag", "")
            if reply.status == 404:
                return None, etag
            check_reply(reply, f"metadata {path}", ok=(200,))
            return reply.body.decode("utf-8", "replace"), etag

        return retrying(f"metadata {path}", once)

    def read(self, path: str) -> str | None:
        """The value of ``path`` (None when absent)."""
        return self.fetch(path)[0]

    def watch(self, path: str, last_etag: str, timeout_sec: int) -> tuple[str | None, str]:
        """Wait (at most ``timeout_sec``) until ``path``'s etag differs from ``last_etag``."""
        query = {"wait_for_change": "true", "timeout_sec": str(max(1, int(timeout_sec)))}
        if last_etag:
            query["last_etag"] = last_etag
        return self.fetch(path, query, timeout=timeout_sec + 15.0)


def service_account_token(metadata: Metadata) -> tuple[str, float]:
    """``(access token, seconds it stays valid)`` of the VM's service account.

    Raises:
        AgentFailure: when the VM has no service account (the metadata server has no token for it:
            ``instances.insert`` attaches none unless the request names one) or the answer is bad.
    """
    raw = metadata.read(TOKEN_KEY)
    if raw is None:
        raise AgentFailure(
            "the VM has no service account, so it gets no access token (set gce.service_account, "
            "or let the server attach the project's default Compute Engine service account)"
        )
    try:
        token = json.loads(raw)
        return str(token["access_token"]), float(token.get("expires_in", 300))
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentFailure("the metadata server gave no usable access token") from exc


# -- Cloud Storage (JSON API) ------------------------------------------------------------------


def parse_gs_uri(uri: object) -> tuple[str, str]:
    """``gs://bucket/name`` → ``(bucket, name)``.

    Raises:
        JobRefused: for anything else (other schemes, no object name, control characters).
    """
    match = _GS_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise JobRefused(f"not a gs://bucket/object URI: {str(uri)[:200]!r}")
    return match.group(1), match.group(2)


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (never through a link, never a FIFO).

    Raises:
        FileNotFoundError: when it does not exist.
        UnsafeFile: when it is a symbolic link or not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UnsafeFile(f"{path} cannot be read safely: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def mask_file(source: str, target: str, values: list[str]) -> None:
    """Copy ``source`` to ``target`` with every value replaced by ``***``, streaming.

    The last ``len(longest) - 1`` bytes of each chunk wait for the next, so a value split
    across two reads is still caught.
    """
    encoded = sorted({value.encode("utf-8") for value in values if value}, key=len, reverse=True)
    hold = max((len(value) for value in encoded), default=1) - 1
    pending = b""
    with open_regular(source) as src, open(target, "wb") as dst:
        while True:
            chunk = src.read(COPY_CHUNK)
            data = pending + chunk
            for value in encoded:
                data = data.replace(value, b"***")
            if not chunk:
                dst.write(data)
                return
            cut = max(0, len(data) - hold)
            dst.write(data[:cut])
            pending = data[cut:]


class Storage:
    """Cloud Storage through its JSON API (or ``STORAGE_EMULATOR_HOST``, unauthenticated)."""

    def __init__(self, metadata: Metadata | None, emulator_host: str | None) -> None:
        if emulator_host:
            base = emulator_host if "://" in emulator_host else f"http://{emulator_host}"
            self._base = base.rstrip("/")
        else:
            self._base = GCS_BASE
        self._emulated = bool(emulator_host)
        self._opener = build_opener(use_proxy=not self._emulated)
        self._metadata = metadata
        self._token = ""
        self._token_expiry = 0.0
        self._token_lock = threading.Lock()

    # auth
    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if not self._emulated:
            headers["Authorization"] = f"Bearer {self._access_token()}"
        return headers

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token and time.time() < self._token_expiry - 300:
                return self._token
            if self._metadata is None:
                raise AgentFailure("no metadata server to get a Cloud Storage token from")
            self._token, lifetime = service_account_token(self._metadata)
            self._token_expiry = time.time() + lifetime
            return self._token

    def _object_url(self, bucket: str, name: str) -> str:
        return f"{self._base}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"

    def _upload_url(self, bucket: str, name: str, upload_type: str) -> str:
        return (
            f"{self._base}/upload/storage/v1/b/{bucket}/o"
            f"?uploadType={upload_type}&name={urllib.parse.quote(name, safe='')}"
        )

    # reads
    def read_bytes(self, uri: str) -> bytes:
        """The content of one object."""
        bucket, name = parse_gs_uri(uri)
        url = self._object_url(bucket, name) + "?alt=media"

        def once() -> bytes:
            reply = http_call(self._opener, "GET", url, headers=self._headers())
            return check_reply(reply, f"download {uri}", ok=(200,)).body

        return retrying(f"download {uri}", once)

    def download_to(self, uri: str, path: str) -> None:
        """Stream one object into the file ``path`` (rewritten from the start on a retry)."""
        bucket, name = parse_gs_uri(uri)
        url = self._object_url(bucket, name) + "?alt=media"

        def once() -> None:
            request = http_request(url, headers=self._headers())
            with open(path, "wb") as out:
                try:
                    with self._opener.open(request, timeout=120) as response:
                        shutil.copyfileobj(response, out, COPY_CHUNK)
                except urllib.error.HTTPError as err:
                    check_reply(Reply(err.code, {}, err.read()), f"download {uri}", ok=())
                except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                    raise TransientError(0, f"download {uri}: {exc}") from exc

        retrying(f"download {uri}", once)

    def list_names(self, uri: str) -> list[str]:
        """Names of every object whose name starts with ``uri``'s object part (all pages)."""
        bucket, prefix = parse_gs_uri(uri)
        names: list[str] = []
        page = ""
        while True:
            query = {"prefix": prefix, **({"pageToken": page} if page else {})}
            url = f"{self._base}/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}"

            def once(url: str = url) -> bytes:
                return check_reply(
                    http_call(self._opener, "GET", url, headers=self._headers()), f"list {uri}", ok=(200,)
                ).body

            listing = json.loads(retrying(f"list {uri}", once) or b"{}")
            names.extend(str(item["name"]) for item in listing.get("items", []))
            page = str(listing.get("nextPageToken") or "")
            if not page:
                return names

    # writes
    def write_bytes(self, uri: str, data: bytes, content_type: str = OCTET) -> None:
        """Create or replace one object with ``data``."""
        if not data or len(data) > RESUMABLE_THRESHOLD:
            # The emulator cannot take an empty media upload; a resumable session works everywhere.
            self._resumable(uri, io.BytesIO(data), len(data), content_type)
            return
        bucket, name = parse_gs_uri(uri)
        url = self._upload_url(bucket, name, "media")

        def once() -> Reply:
            headers = self._headers({"Content-Type": content_type})
            return check_reply(
                http_call(self._opener, "POST", url, data=data, headers=headers), f"upload {uri}"
            )

        retrying(f"upload {uri}", once)

    def write_json(self, uri: str, value: Mapping[str, Any]) -> None:
        """Create or replace one object with ``value`` as JSON."""
        self.write_bytes(uri, json.dumps(value, sort_keys=True).encode("utf-8"), OCTET)

    def upload_file(self, uri: str, path: str, content_type: str = OCTET) -> None:
        """Upload the regular file ``path`` (links refused) as one object."""
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            if 0 < size <= RESUMABLE_THRESHOLD:
                self.write_bytes(uri, handle.read(size), content_type)
            else:
                self._resumable(uri, handle, size, content_type)

    def _resumable(self, uri: str, handle: BinaryIO, size: int, content_type: str) -> None:
        session = self._start_session(uri, size, content_type)
        offset = 0
        failures = 0
        for _ in range(size // RESUMABLE_CHUNK + 2 * len(RETRY_DELAYS) + 4):
            try:
                reply = check_reply(
                    self._put_chunk(session, handle, offset, size), f"upload {uri}", ok=_SESSION_OK
                )
            except TransientError as exc:
                if failures >= len(RETRY_DELAYS):
                    raise
                log.warning("upload %s: chunk at %d failed (%s); resuming", uri, offset, exc.reason)
                time.sleep(RETRY_DELAYS[failures])
                failures += 1
                reply = retrying(f"upload status {uri}", lambda: self._session_status(session, size))
            if reply.status in (200, 201):
                return
            check_reply(reply, f"upload {uri}", ok=(308,))
            offset = _range_end(reply.headers.get("range", ""))
        raise HttpError(0, f"upload {uri}: the resumable session made no progress")

    def _start_session(self, uri: str, size: int, content_type: str) -> str:
        bucket, name = parse_gs_uri(uri)
        url = self._upload_url(bucket, name, "resumable")

        def once() -> str:
            headers = self._headers(
                {
                    "Content-Type": "application/json; charset=UTF-8",
                    "X-Upload-Content-Type": content_type,
                    "X-Upload-Content-Length": str(size),
                }
            )
            reply = check_reply(
                http_call(self._opener, "POST", url, data=b"{}", headers=headers), f"upload {uri}"
            )
            location = reply.headers.get("location", "")
            if not location:
                raise HttpError(reply.status, f"upload {uri}: no resumable session URL")
            return location

        return retrying(f"start upload {uri}", once)

    def _put_chunk(self, session: str, handle: BinaryIO, offset: int, size: int) -> Reply:
        length = min(RESUMABLE_CHUNK, size - offset)
        if length <= 0:
            return self._session_status(session, size)
        handle.seek(offset)
        chunk = handle.read(length)
        if len(chunk) != length:
            raise AgentFailure("a file shrank while it was being uploaded")
        headers = self._headers(
            {"Content-Type": OCTET, "Content-Range": f"bytes {offset}-{offset + length - 1}/{size}"}
        )
        return http_call(self._opener, "PUT", session, data=chunk, headers=headers, timeout=300)

    def _session_status(self, session: str, size: int) -> Reply:
        headers = self._headers({"Content-Type": OCTET, "Content-Range": f"bytes */{size}"})
        return check_reply(
            http_call(self._opener, "PUT", session, data=b"", headers=headers), "upload", ok=_SESSION_OK
        )


def _range_end(header: str) -> int:
    """``bytes=0-N`` (what a 308 carries) → ``N + 1``, the next byte to send; 0 without one."""
    match = re.fullmatch(r"bytes=0-([0-9]+)", header.strip())
    return int(match.group(1)) + 1 if match else 0


# -- job.json ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    """One input to stage: ``dir`` (every object under a prefix) or ``file`` (one object)."""

    name: str
    uri: str
    kind: str


@dataclass(frozen=True)
class Job:
    """A validated job.json: everything the agent does for one attempt."""

    stage_run_id: str
    attempt: int
    image: str
    docker_run: tuple[str, ...]
    container_name: str
    job_dir: str
    bundle_uri: str | None
    secrets_uri: str | None
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    outputs_uri: str
    logs: dict[str, str]
    log_sync_interval: float
    timeout_seconds: int | None
    gpu_count: int
    gpu_wait_seconds: float
    registry_login: str | None = None
    gpu_min_free_mb: float = 0.0
    telemetry_interval: float = 0.0
    telemetry_max_points: int = 2000


@dataclass(frozen=True)
class JobPointer:
    """The ``goldfish-job`` metadata value: which job to run and where its job.json is."""

    stage_run_id: str
    attempt: int
    job_uri: str

    @property
    def key(self) -> tuple[str, int]:
        """What makes a job the same job: ``(stage_run_id, attempt)``."""
        return self.stage_run_id, self.attempt


@dataclass(frozen=True)
class WarmConfig:
    """The ``goldfish-warm`` metadata value of a warm-pool VM."""

    idle_timeout_seconds: float
    state_uri: str | None


def _text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise JobRefused(f"{key} is missing or not allowed: {str(value)[:100]!r}")
    return value


def _optional_text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    return None if raw.get(key) is None else _text(raw, key, pattern)


def _integer(raw: Mapping[str, Any], key: str, *, minimum: int, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise JobRefused(f"{key} must be an integer >= {minimum}, not {str(value)[:40]!r}")
    return value


def _number(raw: Mapping[str, Any], key: str, *, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise JobRefused(f"{key} must be a number in [{low:g}, {high:g}], not {str(value)[:40]!r}")
    return float(value)


def _uri(value: object, what: str) -> str:
    try:
        parse_gs_uri(value)
    except JobRefused as exc:
        raise JobRefused(f"{what}: {exc.reason}") from exc
    return str(value)


def _optional_uri(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else _uri(value, key)


def _check_job_dir(value: object, root: str, stage_run_id: str, attempt: int) -> str:
    expected = f"{root.rstrip('/')}/{stage_run_id}/a{attempt}"
    if not isinstance(value, str) or "\x00" in value or ".." in value.split("/"):
        raise JobRefused(f"job_dir is not allowed: {str(value)[:200]!r}")
    if value != expected:
        raise JobRefused(f"job_dir must be {expected!r}, not {value[:200]!r}")
    return value


def _is_under(path: str, folder: str) -> bool:
    return (
        path.startswith("/")
        and ".." not in path.split("/")
        and (os.path.normpath(path) == folder or os.path.normpath(path).startswith(folder + "/"))
    )


def _mount_sources(value: str) -> list[str]:
    fields = next(csv.reader([value]), [])
    return [field.split("=", 1)[1] for field in fields if field.split("=", 1)[0] in ("source", "src")]


def _option_problem(option: str, value: str | None, directory: str) -> str | None:
    name = option.split("=", 1)[0]
    if name in FORBIDDEN_DOCKER_OPTIONS:
        return f"docker_run may not use {name}"
    given = option.partition("=")[2] if "=" in option else (value or "")
    if name in ("--network", "--net") and given == "host":
        return "docker_run may not use the host network"
    if name in ("--user", "-u") and given.split(":", 1)[0] in ("0", "root", ""):
        return "docker_run may not run the container as root"
    if name == "--security-opt" and "unconfined" in given:
        return "docker_run may not lift the seccomp/AppArmor confinement"
    if name == "--mount":
        sources = _mount_sources(given)
        outside = [source for source in sources if not _is_under(source, directory)]
        if outside:
            return f"docker_run mounts {outside[0][:200]!r}, which is outside job_dir"
    return None


def _check_docker_run(value: object, image: str, container_name: str, directory: str) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not all(isinstance(item, str) and "\x00" not in item for item in value)
        or value[:2] != ["docker", "run"]
    ):
        raise JobRefused("docker_run must be a list of strings starting with 'docker', 'run'")
    argv: list[str] = value
    if "--" not in argv or argv.index("--") + 1 >= len(argv) or argv[argv.index("--") + 1] != image:
        raise JobRefused("docker_run must end with '--', the job's image and the command")
    options = argv[2 : argv.index("--")]
    names = [options[i + 1] for i, item in enumerate(options[:-1]) if item == "--name"]
    if names != [container_name]:
        raise JobRefused("docker_run must name its container container_name (one --name)")
    for index, option in enumerate(options):
        following = options[index + 1] if index + 1 < len(options) else None
        problem = _option_problem(option, following, directory) if option.startswith("-") else None
        if problem:
            raise JobRefused(problem)
    return tuple(argv)


def _check_inputs(value: object) -> tuple[InputSpec, ...]:
    if not isinstance(value, list):
        raise JobRefused("inputs must be a list")
    inputs: list[InputSpec] = []
    for item in value:
        if not isinstance(item, dict):
            raise JobRefused("each input must be an object")
        name = _text(item, "name", _SIGNAL)
        kind = item.get("kind", "dir")
        if kind not in ("dir", "file"):
            raise JobRefused(f"input {name}: kind must be 'dir' or 'file'")
        inputs.append(InputSpec(name=name, uri=_uri(item.get("uri"), f"input {name}"), kind=kind))
    if len({spec.name for spec in inputs}) != len(inputs):
        raise JobRefused("input names must be unique")
    return tuple(inputs)


def _check_outputs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and _SIGNAL.fullmatch(item) for item in value
    ):
        raise JobRefused("outputs must be a list of signal names")
    if len(set(value)) != len(value):
        raise JobRefused("output names must be unique")
    return tuple(value)


def _check_logs(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobRefused("logs must be an object of URIs")
    missing = [key for key in REQUIRED_LOGS if key not in value]
    if missing:
        raise JobRefused(f"logs lacks {', '.join(missing)}")
    return {
        str(key): _uri(uri, f"logs.{key}")
        for key, uri in value.items()
        if key in REQUIRED_LOGS or key in OPTIONAL_LOGS
    }


def validate_job(raw: object, root: str = JOB_ROOT) -> Job:
    """Check a parsed job.json completely before anything of it is used.

    Args:
        raw: The parsed JSON.
        root: The folder every job folder must be in (``JOB_ROOT`` unless a sandbox overrides it).

    Raises:
        JobRefused: naming the first problem.
    """
    if not isinstance(raw, dict):
        raise JobRefused("job.json is not a JSON object")
    if raw.get("schema_version") != SCHEMA_VERSION or isinstance(raw.get("schema_version"), bool):
        raise JobRefused(f"unsupported schema_version {str(raw.get('schema_version'))[:20]!r}")
    stage_run_id = _text(raw, "stage_run_id", _STAGE_RUN_ID)
    attempt = _integer(raw, "attempt", minimum=1)
    image = _text(raw, "image", _IMAGE)
    directory = _check_job_dir(raw.get("job_dir"), root, stage_run_id, attempt)
    container_name = _text(raw, "container_name", _CONTAINER_NAME)
    outputs_uri = _uri(raw.get("outputs_uri"), "outputs_uri")
    timeout = raw.get("timeout_seconds")
    return Job(
        stage_run_id=stage_run_id,
        attempt=attempt,
        image=image,
        docker_run=_check_docker_run(raw.get("docker_run"), image, container_name, directory),
        container_name=container_name,
        job_dir=directory,
        bundle_uri=_optional_uri(raw, "bundle_uri"),
        secrets_uri=_optional_uri(raw, "secrets_uri"),
        inputs=_check_inputs(raw.get("inputs", [])),
        outputs=_check_outputs(raw.get("outputs", [])),
        outputs_uri=outputs_uri if outputs_uri.endswith("/") else outputs_uri + "/",
        logs=_check_logs(raw.get("logs")),
        log_sync_interval=_number(raw, "log_sync_interval", default=10, low=0.1, high=3600),
        timeout_seconds=None if timeout is None else _integer(raw, "timeout_seconds", minimum=1),
        gpu_count=_integer(raw, "gpu_count", minimum=0, default=0),
        gpu_wait_seconds=_number(raw, "gpu_wait_seconds", default=DEFAULT_GPU_WAIT_SECONDS, low=0, high=7200),
        registry_login=_optional_text(raw, "registry_login", _REGISTRY_HOST),
        gpu_min_free_mb=_number(raw, "gpu_min_free_mb", default=0, low=0, high=10_000_000),
        telemetry_interval=_number(raw, "telemetry_interval", default=0, low=0, high=3600),
        telemetry_max_points=_integer(raw, "telemetry_max_points", minimum=1, default=2000),
    )


def failure_uri(raw: object) -> str | None:
    """The ``logs.failure`` URI of a (possibly invalid) job.json, if it alone is valid."""
    logs = raw.get("logs") if isinstance(raw, dict) else None
    uri = logs.get("failure") if isinstance(logs, dict) else None
    try:
        parse_gs_uri(uri)
    except JobRefused:
        return None
    return str(uri)


def _json_object_of(text: str, what: str) -> dict[str, object]:
    """``text`` parsed as a JSON object.

    Raises:
        JobRefused: naming ``what`` when it is not JSON or not an object.
    """
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise JobRefused(f"{what} is not JSON") from exc
    if not isinstance(raw, dict):
        raise JobRefused(f"{what} is not a JSON object")
    return raw


def parse_job_pointer(text: str) -> JobPointer:
    """The ``goldfish-job`` value, checked.

    Raises:
        JobRefused: when it is not ``{"stage_run_id", "attempt", "job_uri"}`` with valid values.
    """
    raw = _json_object_of(text, "goldfish-job")
    return JobPointer(
        stage_run_id=_text(raw, "stage_run_id", _STAGE_RUN_ID),
        attempt=_integer(raw, "attempt", minimum=1),
        job_uri=_uri(raw.get("job_uri"), "job_uri"),
    )


def parse_warm_config(text: str | None) -> WarmConfig | None:
    """The ``goldfish-warm`` value (None when absent).

    Raises:
        JobRefused: when present but not ``{"idle_timeout_seconds", "state_uri"}`` with valid values.
    """
    if text is None:
        return None
    raw = _json_object_of(text, "goldfish-warm")
    idle = _number(raw, "idle_timeout_seconds", default=-1, low=1, high=MAX_WARM_IDLE_SECONDS)
    return WarmConfig(idle_timeout_seconds=idle, state_uri=_optional_uri(raw, "state_uri"))


def parse_secrets(data: bytes) -> dict[str, str]:
    """The secrets object ``{NAME: value}`` (values never appear in an error message).

    Raises:
        AgentFailure: when it is not a JSON object of environment names to text.
    """
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise AgentFailure("the secrets object is not JSON") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and _ENV_NAME.fullmatch(key) and isinstance(value, str) and "\x00" not in value
        for key, value in raw.items()
    ):
        raise AgentFailure("the secrets object must map environment variable names to text")
    return dict(raw)


# -- local files -------------------------------------------------------------------------------


def bundle_member_path(member: tarfile.TarInfo) -> str:
    """The checked relative path of one bundle member ('' for the archive's own ``.``).

    Raises:
        AgentFailure: for absolute names, ``..``, links, devices and anything outside code/, config/.
    """
    name = member.name
    if not name or name.startswith("/") or "\x00" in name:
        raise AgentFailure(f"bundle member {name[:200]!r} has an absolute or odd name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise AgentFailure(f"bundle member {name[:200]!r} climbs out with '..'")
    if not (member.isfile() or member.isdir()):
        raise AgentFailure(f"bundle member {name[:200]!r} is a link or a special file")
    if parts and parts[0] not in BUNDLE_TOP_LEVEL:
        raise AgentFailure(f"bundle member {name[:200]!r} is outside code/ and config/")
    return "/".join(parts)


def safe_extract(archive: str, destination: str) -> int:
    """Extract a ``.tar.gz`` bundle into ``destination`` after checking every member; the file count.

    Raises:
        AgentFailure: when any member is refused (nothing is extracted then) or the archive is bad.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [(member, bundle_member_path(member)) for member in tar.getmembers()]
            for member, relative in members:
                if relative:
                    _extract_member(tar, member, os.path.join(destination, relative))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AgentFailure(f"the bundle cannot be extracted: {exc}") from exc
    return sum(1 for member, _ in members if member.isfile())


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> None:
    if member.isdir():
        os.makedirs(target, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise AgentFailure(f"bundle member {member.name[:200]!r} has no content")
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, COPY_CHUNK)
    os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


def relative_object_path(name: str, prefix: str) -> str:
    """The path under an input folder of object ``name`` listed under ``prefix`` ('' to skip it).

    Raises:
        AgentFailure: when the name would climb out of the folder.
    """
    relative = name[len(prefix) :]
    if not relative or relative.endswith("/"):
        return ""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise AgentFailure(f"object {name[:200]!r} cannot be staged as a file path")
    return relative


def output_files(path: str) -> list[tuple[str, str]]:
    """``(relative name, full path)`` of every file of one output (a file or a folder).

    Raises:
        UnsafeFile: for symbolic links or special files anywhere in it.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return [(os.path.basename(path), path)]
    if not stat.S_ISDIR(mode):
        raise UnsafeFile(f"output {os.path.basename(path)} is a link or a special file")
    found: list[tuple[str, str]] = []
    for folder, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            full = os.path.join(folder, name)
            entry = os.lstat(full).st_mode
            if stat.S_ISLNK(entry) or not (stat.S_ISREG(entry) or stat.S_ISDIR(entry)):
                raise UnsafeFile(f"output file {os.path.relpath(full, path)[:200]!r} is a link or special")
            if stat.S_ISREG(entry):
                found.append((os.path.relpath(full, path).replace(os.sep, "/"), full))
    return sorted(found)


def read_exit_code(logs_dir: str) -> int | None:
    """The integer the stage wrapper left in ``logs_dir/exit_code.txt`` (None if none or bad)."""
    try:
        with open_regular(os.path.join(logs_dir, "exit_code.txt")) as handle:
            return int(handle.read(64).decode("ascii").strip())
    except (OSError, AgentFailure, ValueError, UnicodeDecodeError):
        return None


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def _append_note(path: str, text: str) -> None:
    """Append ``text`` to a log file the container may own (never through a link)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        log.warning("could not append to %s: %s", path, exc)
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, text.encode("utf-8", "replace"))
    finally:
        os.close(fd)


# -- commands ----------------------------------------------------------------------------------


def _tail(text: str, limit: int = 800) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def docker(
    args: list[str], timeout: float, *, env: Mapping[str, str] | None = None, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker ARGS...`` (an argv list), output captured; ``stdin_text`` is fed to its input."""
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=stdin_text,
        stdin=None if stdin_text is not None else subprocess.DEVNULL,
        env=None if env is None else dict(env),
    )


def docker_quiet(args: list[str], timeout: float = 60) -> None:
    """``docker ARGS...`` whose failure does not matter (removing or killing a container)."""
    try:
        docker(args, timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("docker %s: %s", args[0], exc)


def registry_login(host: str, token: str, env: Mapping[str, str]) -> None:
    """``docker login HOST`` as ``oauth2accesstoken`` with the VM's token (given on stdin, never argv).

    The login lands in ``env["DOCKER_CONFIG"]``, the job's own folder: a fresh token per job.

    Raises:
        AgentFailure: with what docker said.
    """
    try:
        done = docker(
            ["login", "--username", REGISTRY_USER, "--password-stdin", host], 120, env=env, stdin_text=token
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentFailure(f"docker login {host} failed: {exc}") from exc
    if done.returncode != 0:
        said = _tail(done.stderr or done.stdout).replace(token, "***")
        raise AgentFailure(f"docker login {host} failed: {said}")
    log.info("logged in to %s", host)


def docker_pull(image: str, env: Mapping[str, str] | None = None) -> None:
    """Pull ``image``, retrying a bounded number of times.

    Raises:
        AgentFailure: with what docker said when every try failed.
    """
    said = ""
    for delay in (*PULL_RETRY_DELAYS, None):
        try:
            done = docker(["pull", image], PULL_TIMEOUT_SECONDS, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = str(exc)
        else:
            if done.returncode == 0:
                log.info("pulled %s", image)
                return
            said = _tail(done.stderr or done.stdout)
        if delay is None:
            break
        log.warning("docker pull %s failed (%s); retrying in %.0fs", image, said, delay)
        time.sleep(delay)
    raise AgentFailure(f"docker pull {image} failed: {said}")


def gpus_with_free_memory(output: str, min_free_mb: float = 0.0) -> int:
    """How many lines of ``--query-gpu=memory.free`` output show free memory (at least ``min_free_mb``)."""
    count = 0
    for line in output.splitlines():
        try:
            free = float(line.strip().split(",")[0])
        except ValueError:
            continue
        if free > 0 and free >= min_free_mb:
            count += 1
    return count


def query_gpus(wanted: int, min_free_mb: float = 0.0) -> tuple[bool, str]:
    """Whether ``wanted`` GPUs are visible with ``min_free_mb`` free each, and what nvidia-smi said."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False, "nvidia-smi was not found"
    try:
        done = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        return False, f"nvidia-smi exited {done.returncode}: {_tail(done.stderr or done.stdout, 300)}"
    ready = gpus_with_free_memory(done.stdout, min_free_mb)
    enough = f"at least {min_free_mb:g} MB" if min_free_mb > 0 else "free memory"
    said = (
        f"nvidia-smi shows {ready} GPU(s) with {enough} (MB free each: {_tail(done.stdout, 300).strip()!r})"
    )
    return ready >= wanted, said


def wait_for_gpus(wanted: int, wait_seconds: float, min_free_mb: float = 0.0) -> None:
    """Poll nvidia-smi until ``wanted`` GPUs have ``min_free_mb`` free, at most ``wait_seconds``.

    Raises:
        AgentFailure: saying what nvidia-smi said last.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        ready, said = query_gpus(wanted, min_free_mb)
        if ready:
            log.info("GPUs ready: %s", said)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AgentFailure(f"{wanted} GPU(s) not ready after {wait_seconds:g}s: {said}")
        time.sleep(min(GPU_POLL_SECONDS, remaining))


GPU_TELEMETRY_FIELDS = "utilization.gpu,memory.used,temperature.gpu"
GPU_TELEMETRY_SUFFIXES = ("util", "mem_mb", "temp_c")


def gpu_telemetry_lines(output: str, count: int, at: float) -> str:
    """Metric lines (``sys/gpu<i>/util|mem_mb|temp_c``) from ``--query-gpu=GPU_TELEMETRY_FIELDS`` output."""
    lines = []
    for number, row in enumerate(line for line in output.splitlines() if line.strip()):
        if number >= count:
            break
        cells = row.split(",")  # zip(strict=...) is newer than the VM's Python 3.9
        for suffix, cell in ((s, cells[i]) for i, s in enumerate(GPU_TELEMETRY_SUFFIXES) if i < len(cells)):
            try:
                value = float(cell.strip())
            except ValueError:
                continue
            point = {"name": f"sys/gpu{number}/{suffix}", "value": value, "step": None, "at": at}
            lines.append(json.dumps(point) + "\n")
    return "".join(lines)


class GpuTelemetry:
    """Samples the VM's GPUs into the job's metrics file while the container runs.

    The same budget as the in-container runner: the interval doubles each time half of the
    remaining ``max_points`` is used, and sampling stops at the cap. A failing nvidia-smi is
    logged once and ends sampling; the job is never affected.
    """

    def __init__(
        self, metrics_file: str, count: int, interval: float, max_points: int, stop: threading.Event
    ):
        self._file = metrics_file
        self._count = count
        self._interval = interval
        self._max_points = max_points
        self._stop = stop

    def run(self) -> None:
        """The sampling loop (a thread's target)."""
        interval, points, budget = self._interval, 0, self._max_points
        next_doubling = max(1, budget // 2)
        exe = shutil.which("nvidia-smi")
        while exe and points < budget and not self._stop.wait(interval):
            try:
                done = subprocess.run(
                    [exe, f"--query-gpu={GPU_TELEMETRY_FIELDS}", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                    stdin=subprocess.DEVNULL,
                )
                self._append(gpu_telemetry_lines(done.stdout, self._count, time.time()))
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("GPU telemetry stopped: %s", exc)
                return
            points += 1
            if points >= next_doubling:
                interval *= 2
                next_doubling += max(1, (budget - next_doubling) // 2)

    def _append(self, text: str) -> None:
        # Created writable for the container's user too: the stage appends its own metrics here.
        fd = os.open(self._file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            if os.fstat(fd).st_uid == os.getuid():
                os.fchmod(fd, 0o666)
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)


def power_off() -> None:
    """``poweroff`` (found on PATH), else ``shutdown -h now``."""
    for argv in (["poweroff"], ["shutdown", "-h", "now"]):
        exe = shutil.which(argv[0])
        if exe is None:
            continue
        log.info("powering off: %s", " ".join(argv))
        try:
            done = subprocess.run([exe, *argv[1:]], check=False, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("%s failed: %s", argv[0], exc)
            continue
        if done.returncode == 0:
            return
        log.error("%s exited %d", argv[0], done.returncode)
    log.error("could not power off: neither poweroff nor shutdown worked")


# -- one job -----------------------------------------------------------------------------------


class JobRun:
    """One accepted job, from ``ack.json`` to ``exit_code.txt`` (or failure/preemption)."""

    def __init__(self, agent: Agent, job: Job) -> None:
        self.agent = agent
        self.job = job
        self.storage = agent.storage
        self.phase = "accepted"
        self._outcome: str | None = None
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced: dict[str, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._preempt_done = threading.Event()
        self._secret_values: list[str] = []
        self._threads: list[threading.Thread] = []

    def path(self, *parts: str) -> str:
        """A path inside the job folder."""
        return os.path.join(self.job.job_dir, *parts)

    # lifecycle
    def run(self) -> str:
        """Do the job; ``exited``, ``failed`` or ``preempted``. Never raises."""
        try:
            self._accept()
            return self._execute()
        except Preempted:
            return self._await_preemption()
        except AgentFailure as exc:
            return self._fail(exc.reason)
        except Exception as exc:
            log.exception("unexpected error in %s", self.job.stage_run_id)
            return self._fail(f"agent error: {type(exc).__name__}: {exc}")
        finally:
            self._stop_threads()

    def _accept(self) -> None:
        job = self.job
        ack = {
            "instance": self.agent.instance,
            "zone": self.agent.zone,
            "attempt": job.attempt,
            "at": iso_utc(),
        }
        self.storage.write_json(job.logs["ack"], ack)
        log.info("accepted %s attempt %d (image %s)", job.stage_run_id, job.attempt, job.image)
        self.agent.job_started(job)
        self._prepare_dirs()
        self._start_threads()

    def _execute(self) -> str:
        self._set_phase("staging")
        self._stage_bundle()
        self._stage_inputs()
        env = self._container_env()
        if self.job.gpu_count > 0:
            self._set_phase("waiting_for_gpus")
            wait_for_gpus(self.job.gpu_count, self.job.gpu_wait_seconds, self.job.gpu_min_free_mb)
        self._set_phase("pulling")
        docker_pull(self.job.image, self._registry_env())
        self._set_phase("running")
        self._start_gpu_telemetry()
        code = self._run_container(env)
        return self._finish(code)

    def _start_gpu_telemetry(self) -> None:
        """GPU samples come from the VM (the container sees its GPUs only through the runtime)."""
        job = self.job
        if job.gpu_count <= 0 or job.telemetry_interval <= 0:
            return
        sampler = GpuTelemetry(
            self.path("logs", "metrics.jsonl"),
            job.gpu_count,
            job.telemetry_interval,
            job.telemetry_max_points,
            self._stop,
        )
        thread = threading.Thread(target=sampler.run, name=f"telemetry-{job.stage_run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _set_phase(self, phase: str) -> None:
        with self._lock:
            if self._outcome == "preempted":
                raise Preempted()
            self.phase = phase

    def _claim(self, outcome: str) -> bool:
        """Decide the job's outcome once; a preemption can only claim an undecided job."""
        with self._lock:
            if self._outcome == "preempted" or (outcome == "preempted" and self._outcome is not None):
                return False
            self._outcome = outcome
            return True

    def _redact(self, text: str) -> str:
        for value in self._secret_values:
            if value:
                text = text.replace(value, "***")
        return text

    # folders, bundle, inputs, secrets
    def _prepare_dirs(self) -> None:
        os.makedirs(self.job.job_dir, mode=0o755, exist_ok=True)
        for name in (*JOB_SUBDIRS, "inputs"):
            folder = self.path(name)
            if name != "inputs":
                _remove(folder)
            os.makedirs(folder, mode=0o755, exist_ok=True)
            os.chmod(folder, 0o777 if name in WRITABLE_SUBDIRS else 0o755)

    def _stage_bundle(self) -> None:
        if self.job.bundle_uri is None:
            return
        archive = self.path("bundle.tar.gz")
        self.storage.download_to(self.job.bundle_uri, archive)
        count = safe_extract(archive, self.job.job_dir)
        os.unlink(archive)
        log.info("bundle extracted (%d files)", count)

    def _stage_inputs(self) -> None:
        for spec in self.job.inputs:
            final = self.path("inputs", spec.name)
            marker = self.path("inputs", f".{spec.name}.complete")
            if os.path.exists(marker) and os.path.lexists(final):
                log.info("input %s already staged", spec.name)
                continue
            partial = self.path("inputs", f".partial-{spec.name}")
            for stale in (partial, final, marker):
                _remove(stale)
            if spec.kind == "file":  # the layout local backends give a file input: <name>/<file>
                os.makedirs(partial, mode=0o755)
                basename = parse_gs_uri(spec.uri)[1].rsplit("/", 1)[-1]
                self.storage.download_to(spec.uri, os.path.join(partial, basename))
            else:
                self._download_prefix(spec.uri, partial)
            os.rename(partial, final)
            with open(marker, "w", encoding="utf-8") as done:
                done.write(iso_utc())
            log.info("input %s staged", spec.name)

    def _download_prefix(self, uri: str, folder: str) -> None:
        bucket, prefix = parse_gs_uri(uri)
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        os.makedirs(folder, mode=0o755)
        for name in self.storage.list_names(f"gs://{bucket}/{prefix}"):
            relative = relative_object_path(name, prefix)
            if not relative:
                continue
            target = os.path.join(folder, relative)
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            self.storage.download_to(f"gs://{bucket}/{name}", target)

    def _container_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.job.secrets_uri is not None:
            secrets = parse_secrets(self.storage.read_bytes(self.job.secrets_uri))
            self._secret_values = sorted(secrets.values(), key=len, reverse=True)
            env.update(secrets)
            log.info("secrets loaded: %s", ", ".join(sorted(secrets)) or "none")
        return env

    def _registry_env(self) -> dict[str, str] | None:
        """The environment ``docker pull`` needs: a login to the job's registry when it asks for one."""
        host = self.job.registry_login
        if host is None:
            return None
        folder = self.path("docker-config")  # not mounted into the container
        os.makedirs(folder, mode=0o700, exist_ok=True)
        env = {**os.environ, "DOCKER_CONFIG": folder}
        token, _lifetime = service_account_token(self.agent.metadata)
        self._secret_values.append(token)
        registry_login(host, token, env)
        return env

    # the container
    def _run_container(self, env: dict[str, str]) -> int:
        docker_quiet(["rm", "-f", self.job.container_name])
        cli_log = self.path("docker-run.log")
        log.info("starting container %s", self.job.container_name)
        with open(cli_log, "wb") as out:
            proc = subprocess.Popen(
                list(self.job.docker_run),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            returncode = self._wait_container(proc)
        if self._outcome == "preempted":
            raise Preempted()
        docker_quiet(["rm", "-f", self.job.container_name])  # exited containers would pile up
        code = read_exit_code(self.path("logs"))
        if code is None:
            code = returncode
            self._note_docker_failure(returncode, cli_log)
        log.info("container %s exited with %d", self.job.container_name, code)
        return code

    def _wait_container(self, proc: subprocess.Popen[bytes]) -> int:
        timeout = self.job.timeout_seconds
        deadline = None if timeout is None else time.monotonic() + timeout + TIMEOUT_GRACE_SECONDS
        stop_sent: float | None = None
        killed = False
        while True:
            try:
                return proc.wait(timeout=WAIT_TICK_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if self._outcome == "preempted" and not killed:
                docker_quiet(["kill", self.job.container_name])
                killed = True
            if deadline is not None and time.monotonic() > deadline and not killed:
                if stop_sent is None:
                    log.warning("%s ran past its timeout: asking it to stop", self.job.stage_run_id)
                    _append_note(self.path("control", "stop"), "timeout\n")
                    stop_sent = time.monotonic()
                elif time.monotonic() - stop_sent > KILL_GRACE_SECONDS:
                    docker_quiet(["kill", self.job.container_name])
                    killed = True

    def _note_docker_failure(self, returncode: int, cli_log: str) -> None:
        try:
            with open(cli_log, "rb") as handle:
                said = _tail(handle.read()[-4000:].decode("utf-8", "replace"))
        except OSError:
            said = ""
        note = self._redact(
            f"docker run exited {returncode} before the stage wrapper recorded an exit code: {said}"
        )
        log.warning("%s", note)
        _append_note(self.path("logs", "stderr.log"), f"[goldfish-agent] {note}\n")

    # results
    def _finish(self, code: int) -> str:
        if code != 0 and self._preemption_announced():
            self._on_preempted()  # the shutdown stopped docker before the watcher saw the notice
        if not self._claim("exited"):
            raise Preempted()
        self._set_phase_quietly("uploading")
        self._upload_outputs()  # the heartbeat goes on meanwhile: outputs can be large
        self._stop_threads()  # nothing of this job may be written after exit_code.txt
        self.sync_logs()
        self.storage.write_bytes(self.job.logs["exit_code"], str(code).encode("ascii"), TEXT)
        log.info("%s attempt %d done: exit code %d", self.job.stage_run_id, self.job.attempt, code)
        return "exited"

    def _preemption_announced(self) -> bool:
        try:
            value = self.agent.metadata.read(PREEMPTED_KEY)
        except AgentFailure:
            return False
        return (value or "").strip().upper() == "TRUE"

    def _set_phase_quietly(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def _upload_outputs(self) -> None:
        for signal in self.job.outputs:
            path = self.path("outputs", signal)
            if not os.path.lexists(path):
                log.warning("declared output %s was not written", signal)
                continue
            files = output_files(path)
            for relative, full in files:
                self.storage.upload_file(f"{self.job.outputs_uri}{signal}/{relative}", full)
            log.info("output %s uploaded (%d files)", signal, len(files))

    def _fail(self, reason: str) -> str:
        if not self._claim("failed"):
            return self._await_preemption()
        self._stop_threads()
        reason = self._redact(reason)[:MAX_REASON]
        log.error("%s attempt %d failed: %s", self.job.stage_run_id, self.job.attempt, reason)
        body = {"kind": "infra_error", "reason": reason, "attempt": self.job.attempt, "at": iso_utc()}
        try:
            self.sync_logs()
            self.storage.write_json(self.job.logs["failure"], body)
        except Exception as exc:
            log.error("could not report the failure: %s", exc)
        return "failed"

    def _await_preemption(self) -> str:
        self._preempt_done.wait(PREEMPT_FLUSH_WAIT_SECONDS)
        return "preempted"

    # background threads
    def _start_threads(self) -> None:
        threads = ((self._beat_loop, "beat"), (self._sync_loop, "sync"), (self._watch_preemption, "preempt"))
        for target, name in threads:
            thread = threading.Thread(target=target, name=f"{name}-{self.job.stage_run_id}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _stop_threads(self) -> None:
        """Stop the sync loop and the watcher (the watcher may linger in a request; it acts no more)."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread() and thread.name.startswith(("sync-", "beat-")):
                thread.join(THREAD_JOIN_SECONDS)

    def _beat_loop(self) -> None:
        """The heartbeat, on its own thread: a long log upload never delays it."""
        while True:
            try:
                self.storage.write_json(
                    self.job.logs["heartbeat"],
                    {"at": iso_utc(), "state": self.phase, "attempt": self.job.attempt},
                )
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
            if self._stop.wait(self.job.log_sync_interval):
                return

    def _sync_loop(self) -> None:
        while True:
            try:
                self.sync_logs()
            except Exception as exc:
                log.warning("log sync failed: %s", exc)
            if self._stop.wait(self.job.log_sync_interval):
                return

    def sync_logs(self) -> None:
        """Upload each log file that changed (size or mtime) since its last upload."""
        with self._sync_lock:
            self._upload_changed_logs()

    def _upload_changed_logs(self) -> None:
        """The body of :meth:`sync_logs` (the caller holds the sync lock)."""
        for filename, key in LOG_FILES:
            uri = self.job.logs.get(key)
            path = self.path("logs", filename)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            signature = (info.st_size, info.st_mtime_ns)
            if uri is None or self._synced.get(filename) == signature:
                continue
            try:
                self._upload_masked(uri, path)
            except UnsafeFile as exc:
                log.warning("not syncing %s: %s", filename, exc.reason)
            self._synced[filename] = signature

    def _upload_masked(self, uri: str, path: str) -> None:
        """Upload a log file; with secrets, a copy with their values replaced by ``***``.

        The in-stage runner already masks what the stage prints; this also covers lines a stage
        wrote into its log files itself.
        """
        if not self._secret_values:
            self.storage.upload_file(uri, path, TEXT)
            return
        masked = self.path(f".upload-{os.path.basename(path)}")
        try:
            mask_file(path, masked, self._secret_values)
            self.storage.upload_file(uri, masked, TEXT)
        finally:
            _remove(masked)

    def _watch_preemption(self) -> None:
        etag: str | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if etag is None:
                    value, new_etag = self.agent.metadata.fetch(PREEMPTED_KEY)
                else:
                    value, new_etag = self.agent.metadata.watch(PREEMPTED_KEY, etag, PREEMPT_WATCH_SECONDS)
            except AgentFailure as exc:
                log.warning("preemption watch: %s", exc.reason)
                self._stop.wait(5)
                continue
            if (value or "").strip().upper() == "TRUE":
                self._on_preempted()
                return
            if new_etag == etag and time.monotonic() - started < 1:
                self._stop.wait(1)
            etag = new_etag

    def _on_preempted(self) -> None:
        if self._stop.is_set() or not self._claim("preempted"):
            return
        job = self.job
        log.warning("preemption notice: stopping %s attempt %d", job.stage_run_id, job.attempt)
        # About 30 s remain before the VM is switched off: the marker first, so the server retries
        # the stage whatever happens next; then the container; then, bounded, the logs.
        try:
            self.storage.write_json(job.logs["preempted"], {"at": iso_utc(), "attempt": job.attempt})
        except Exception as exc:
            log.error("could not write preempted.json: %s", exc)
        docker_quiet(["kill", job.container_name], timeout=10)
        self._stop.set()
        if self._sync_lock.acquire(timeout=PREEMPT_SYNC_WAIT_SECONDS):
            try:
                self._upload_changed_logs()
            except Exception as exc:
                log.error("final log sync failed: %s", exc)
            finally:
                self._sync_lock.release()
        self._preempt_done.set()


# -- the VM ------------------------------------------------------------------------------------


class Agent:
    """The agent's life on one VM: jobs from metadata, then power off (cold) or idle (warm)."""

    def __init__(
        self,
        metadata: Metadata,
        storage: Storage,
        *,
        root: str = JOB_ROOT,
        shut_down: Callable[[], None] = power_off,
    ) -> None:
        self.metadata = metadata
        self.storage = storage
        self.root = root
        self._shut_down = shut_down
        self.instance = "unknown"
        self.zone = "unknown"
        self.warm: WarmConfig | None = None
        self._done: set[tuple[str, int]] = set()
        self._last_dir: str | None = None

    def run(self) -> int:
        """Serve jobs until the VM should stop, then power off (not after a preemption)."""
        self._identify()
        value, etag = self.metadata.fetch(JOB_KEY)
        while True:
            if value is not None and self._is_new(value):
                if self._handle_safely(value) == "preempted":
                    log.info("preempted: exiting")
                    return 0
                if self.warm is None:
                    break
            found = self._wait_for_job(etag)
            if found is None:
                break
            value, etag = found
        if self.warm is not None:
            self._write_state("stopped", None, None)
        self._shut_down()
        return 0

    def _identify(self) -> None:
        try:
            self.instance = self.metadata.read("instance/name") or "unknown"
            self.zone = (self.metadata.read("instance/zone") or "unknown").rsplit("/", 1)[-1]
        except AgentFailure as exc:
            log.warning("could not read the instance name/zone: %s", exc.reason)
        try:
            self.warm = parse_warm_config(self.metadata.read(WARM_KEY))
        except JobRefused as exc:
            log.error("ignoring goldfish-warm (%s): running as a cold VM", exc.reason)
        log.info("instance %s in %s (%s)", self.instance, self.zone, "warm" if self.warm else "cold")

    def _is_new(self, value: str) -> bool:
        try:
            key = parse_job_pointer(value).key
        except JobRefused:
            return True  # _handle reports it
        if key in self._done:
            log.info("goldfish-job names %s attempt %d again: already run, ignored", *key)
            return False
        return True

    def _wait_for_job(self, etag: str) -> tuple[str, str] | None:
        """Wait for a new goldfish-job until the idle deadline (warm) or the first-job wait (cold)."""
        timeout = self.warm.idle_timeout_seconds if self.warm else FIRST_JOB_WAIT_SECONDS
        deadline = time.monotonic() + timeout
        if self.warm is not None:
            self._write_state("idle", None, time.time() + timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            started = time.monotonic()
            try:
                value, new_etag = self.metadata.watch(
                    JOB_KEY, etag, math.ceil(min(remaining, JOB_WATCH_SECONDS))
                )
            except AgentFailure as exc:
                log.warning("waiting for a job: %s", exc.reason)
                time.sleep(min(5.0, max(remaining, 0.0)))
                continue
            if new_etag != etag and value is not None and self._is_new(value):
                return value, new_etag
            if new_etag == etag and time.monotonic() - started < 1:
                time.sleep(1)
            etag = new_etag

    def _handle_safely(self, value: str) -> str:
        try:
            return self._handle(value)
        except Exception:
            log.exception("could not handle goldfish-job")
            return "error"

    def _handle(self, value: str) -> str:
        """Run the job a goldfish-job value names; the outcome (``refused`` when it is not run)."""
        try:
            pointer = parse_job_pointer(value)
        except JobRefused as exc:
            log.error("ignoring goldfish-job: %s", exc.reason)
            return "refused"
        self._done.add(pointer.key)
        try:
            raw = json.loads(self.storage.read_bytes(pointer.job_uri))
        except (AgentFailure, ValueError) as exc:
            log.error("cannot read job %s: %s", pointer.job_uri, getattr(exc, "reason", exc))
            return "unreadable"
        try:
            job = validate_job(raw, self.root)
            if (job.stage_run_id, job.attempt) != pointer.key:
                raise JobRefused("job.json names another stage run or attempt than goldfish-job")
        except JobRefused as exc:
            self._refuse(raw, pointer, exc.reason)
            return "refused"
        self._forget_previous(job.job_dir)
        return JobRun(self, job).run()

    def _refuse(self, raw: object, pointer: JobPointer, reason: str) -> None:
        log.error("refusing %s attempt %d: %s", pointer.stage_run_id, pointer.attempt, reason)
        uri = failure_uri(raw)
        if uri is None:
            return
        body = {
            "kind": "infra_error",
            "reason": f"job refused: {reason}",
            "attempt": pointer.attempt,
            "at": iso_utc(),
        }
        try:
            self.storage.write_json(uri, body)
        except AgentFailure as exc:
            log.error("could not write failure.json: %s", exc.reason)

    def _forget_previous(self, directory: str) -> None:
        """Remove the previous job's folder (all of it is in the bucket by now)."""
        previous, self._last_dir = self._last_dir, directory
        if previous and previous != directory and _is_under(previous, self.root):
            shutil.rmtree(previous, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(previous))  # the stage run's folder, once it is empty

    def job_started(self, job: Job) -> None:
        """A job was accepted: a warm VM reports itself busy with it."""
        if self.warm is not None:
            self._write_state("busy", job.stage_run_id, None)

    def _write_state(self, state: str, run_id: str | None, idle_deadline: float | None) -> None:
        if self.warm is None or self.warm.state_uri is None:
            return
        body = {
            "state": state,
            "run_id": run_id,
            "at": iso_utc(),
            "idle_deadline": None if idle_deadline is None else iso_utc(idle_deadline),
        }
        try:
            self.storage.write_json(self.warm.state_uri, body)
            log.info("state %s", state)
        except AgentFailure as exc:
            log.error("could not write state.json: %s", exc.reason)


# -- entry point -------------------------------------------------------------------------------


def job_root() -> str:
    """The folder job folders must be in: :data:`JOB_ROOT`, or ``$GOLDFISH_AGENT_JOB_ROOT`` (sandboxes)."""
    override = os.environ.get(JOB_ROOT_ENV, "")
    if not override:
        return JOB_ROOT
    root = os.path.normpath(override)
    if not os.path.isabs(root) or root == "/":
        raise SystemExit(f"{JOB_ROOT_ENV} must be an absolute folder other than /")
    return root


def configure_logging() -> None:
    """Timestamped (UTC) lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ goldfish-agent %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main() -> int:
    """Run the agent; the process exit status."""
    configure_logging()
    metadata = Metadata(os.environ.get(METADATA_HOST_ENV) or DEFAULT_METADATA_HOST)
    storage = Storage(metadata, os.environ.get(STORAGE_EMULATOR_ENV) or None)
    agent = Agent(metadata, storage, root=job_root())
    try:
        return agent.run()
    except Exception:
        log.exception("the agent failed; powering off")
        power_off()
        return 1


if __name__ == "__main__":
    sys.exit(main())
