"""HTTP for the metadata server and Cloud Storage: one request, reply checks, bounded retries."""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from .errors import HttpError, TransientError

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # transient HTTP errors: then one last try

log = logging.getLogger("goldfish-agent")
T = TypeVar("T")


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
