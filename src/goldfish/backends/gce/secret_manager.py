"""Secret values from Google Secret Manager, for stages that run on GCE (``gce.secret_manager: true``).

The server reads ``projects/<gce.project_id>/secrets/<NAME>/versions/latest`` when a GCE stage
names a secret that neither the project's secret store nor the server's environment holds; the
value then travels like any other secret, in the job's ``secrets.json`` only. The client
(``google-cloud-secret-manager``, REST transport) comes from ``adaptor.py`` on first use;
``gce.secret_manager_endpoint`` points it at a local fake in tests.
"""

from __future__ import annotations

import threading
from typing import Any

from goldfish.backends.gce import adaptor
from goldfish.errors import GoldfishError

RPC_TIMEOUT = 30.0


class SecretManagerError(GoldfishError):
    """Secret Manager refused or failed a read (not a missing secret: that is SECRET_NOT_SET)."""

    code = "SECRET_MANAGER_FAILED"
    default_remedy = (
        "Give the server's credentials roles/secretmanager.secretAccessor on the secret (or the "
        "project), check gce.project_id, or set the value with `goldfish secrets set NAME` instead."
    )


class SecretManagerSource:
    """Reads the latest version of a secret by name (None when it does not exist)."""

    def __init__(self, project_id: str, endpoint: str | None = None):
        self.project_id = project_id
        self.endpoint = endpoint
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self, name: str) -> str | None:
        """The value of secret ``name``, or None when Secret Manager has no such secret.

        Raises:
            SecretManagerError: for refused credentials, a wrong project or an unreachable API.
        """
        api_exceptions = adaptor.api_exceptions()
        path = f"projects/{self.project_id}/secrets/{name}/versions/latest"
        try:
            response = self._secret_client().access_secret_version(name=path, timeout=RPC_TIMEOUT)
        except api_exceptions.NotFound:
            return None
        except api_exceptions.GoogleAPICallError as exc:
            raise SecretManagerError(
                f"Secret Manager could not read secret {name} in project {self.project_id}: "
                f"{getattr(exc, 'message', None) or type(exc).__name__}.",
                details={"name": name, "project_id": self.project_id},
            ) from None
        data: bytes = response.payload.data
        return data.decode("utf-8", errors="replace")

    def _secret_client(self) -> Any:
        with self._lock:
            if self._client is None:
                options = {"api_endpoint": self.endpoint} if self.endpoint else None
                self._client = adaptor.secret_manager().SecretManagerServiceClient(
                    credentials=self._credentials(), transport="rest", client_options=options
                )
            return self._client

    def _credentials(self) -> Any:
        try:
            return adaptor.google_credentials(self.endpoint)
        except adaptor.auth_exceptions().DefaultCredentialsError as exc:
            raise SecretManagerError(f"No Google Cloud credentials found for Secret Manager: {exc}") from None
