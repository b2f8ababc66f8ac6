"""Cloud Storage through its JSON API (or ``STORAGE_EMULATOR_HOST``), with resumable uploads."""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Mapping
from typing import Any, BinaryIO

from .errors import AgentFailure, HttpError, JobRefused, TransientError
from .files import COPY_CHUNK, open_regular
from .metadata import Metadata, service_account_token
from .transport import RETRY_DELAYS, Reply, build_opener, check_reply, http_call, http_request, retrying

STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
GCS_BASE = "https://storage.googleapis.com"
RESUMABLE_THRESHOLD = 8 * 1024 * 1024  # larger uploads use a resumable session
RESUMABLE_CHUNK = 32 * 256 * 1024  # a multiple of 256 KiB, as GCS requires
OCTET = "application/octet-stream"  # JSON objects too: the emulator parses application/json bodies
TEXT = "text/plain; charset=utf-8"
_SESSION_OK = (200, 201, 308)  # a resumable session: done, or "resume incomplete"
_GS_URI = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])/([^\x00\r\n]{1,1024})$")

log = logging.getLogger("goldfish-agent")


def parse_gs_uri(uri: object) -> tuple[str, str]:
    """``gs://bucket/name`` → ``(bucket, name)``.

    Raises:
        JobRefused: for anything else (other schemes, no object name, control characters).
    """
    match = _GS_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None:
        raise JobRefused(f"not a gs://bucket/object URI: {str(uri)[:200]!r}")
    return match.group(1), match.group(2)


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
