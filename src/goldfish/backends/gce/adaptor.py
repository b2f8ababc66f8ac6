"""The one door to Google's client libraries for the GCE backend: imported on first use.

Nothing else under ``backends/gce/`` imports a Google library: ``compute.py``, ``failures.py``,
``secret_manager.py`` and ``doctor.py`` ask this module for the library they need. Importing
any of them stays cheap (the Compute client takes seconds to import), and a missing library
becomes one :class:`GceNotConfiguredError` whose remedy is the install command.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from goldfish.backends.gce.config_check import GceNotConfiguredError

INSTALL_HINT = "pip install 'goldfish-mcp[gce]'"
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# module -> the distribution that provides it (named in the error when it is missing)
_DISTRIBUTIONS = {
    "google.cloud.compute_v1": "google-cloud-compute",
    "google.cloud.secretmanager": "google-cloud-secret-manager",
    "google.cloud.storage": "google-cloud-storage",
    "google.api_core.exceptions": "google-api-core",
    "google.api_core.retry": "google-api-core",
    "google.auth": "google-auth",
    "google.auth.credentials": "google-auth",
    "google.auth.exceptions": "google-auth",
    "requests": "requests",
}


def _module(name: str) -> ModuleType:
    """``name`` imported (once; Python caches it).

    Raises:
        GceNotConfiguredError: when its library is not installed; the remedy installs it.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        package = _DISTRIBUTIONS.get(name, name)
        raise GceNotConfiguredError(
            f"The Google client library {package} is not installed, so stages cannot run on GCE.",
            details={"missing_library": package},
            remedy=f"Install the gce extra: {INSTALL_HINT}",
        ) from None


def compute_v1() -> ModuleType:
    """``google.cloud.compute_v1`` (clients, requests, resources)."""
    return _module("google.cloud.compute_v1")


def secret_manager() -> ModuleType:
    """``google.cloud.secretmanager``."""
    return _module("google.cloud.secretmanager")


def api_exceptions() -> ModuleType:
    """``google.api_core.exceptions`` (what a failed call raises)."""
    return _module("google.api_core.exceptions")


def api_retry() -> ModuleType:
    """``google.api_core.retry``."""
    return _module("google.api_core.retry")


def auth_exceptions() -> ModuleType:
    """``google.auth.exceptions``."""
    return _module("google.auth.exceptions")


def call_errors() -> tuple[type[BaseException], ...]:
    """The exception types a Google API call may raise that are failures, not programming errors."""
    requests = _module("requests")
    return (
        api_exceptions().GoogleAPIError,
        auth_exceptions().GoogleAuthError,
        requests.RequestException,
        OSError,
    )


def missing_library(name: str) -> str | None:
    """Why module ``name`` cannot be imported (None when it can): for ``goldfish doctor``."""
    try:
        importlib.import_module(name)
    except Exception as error:
        return " ".join((str(error) or type(error).__name__).split())[:400]
    return None


def is_local_endpoint(api_endpoint: str | None) -> bool:
    """Whether ``api_endpoint`` points at a local simulator (then no real credentials are used)."""
    if not api_endpoint:
        return False
    text = api_endpoint.lower()
    return text.startswith("http://") or any(host in text for host in _LOCAL_HOSTS)


def default_credentials() -> tuple[Any, str | None]:
    """The application default credentials (cloud-platform scope) and their project.

    Raises:
        google.auth.exceptions.DefaultCredentialsError: when there are none (callers translate it).
    """
    credentials, project = _module("google.auth").default(scopes=[CLOUD_SCOPE])
    return credentials, project


def google_credentials(api_endpoint: str | None) -> Any:
    """Anonymous credentials for a local simulator, else the application default credentials.

    Raises:
        google.auth.exceptions.DefaultCredentialsError: when there are none (callers translate it).
    """
    if is_local_endpoint(api_endpoint):
        return _module("google.auth.credentials").AnonymousCredentials()
    return default_credentials()[0]
