"""The instance's metadata server: values, wait-for-change watches, the service-account token."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping

from .errors import AgentFailure
from .transport import build_opener, check_reply, http_call, retrying

METADATA_HOST_ENV = "GCE_METADATA_HOST"
DEFAULT_METADATA_HOST = "metadata.google.internal"
JOB_KEY = "instance/attributes/goldfish-job"
WARM_KEY = "instance/attributes/goldfish-warm"
PREEMPTED_KEY = "instance/preempted"
TOKEN_KEY = "instance/service-accounts/default/token"  # noqa: S105 - a metadata path


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
