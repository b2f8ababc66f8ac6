"""The GCE backend's wiring: its Compute client, project bucket and warm pool, each built once.

The backend factory (``backends/factory.py``) builds GCE through :func:`build`, so the backend
and its warm pool share one Compute client and the warm-pool rows the context created.
"""

from __future__ import annotations

from goldfish.backends.gce.backend import GceBackend
from goldfish.backends.gce.connection import ComputeConnection, project_bucket
from goldfish.backends.gce.warm_pool import WarmPoolService
from goldfish.backends.protocol import BackendSettings


def build(settings: BackendSettings) -> GceBackend:
    """The GCE backend with its Compute client and warm pool (none without the pool's rows)."""
    gce = settings.config.gce
    api = ComputeConnection(gce.project_id, gce.api_endpoint)
    pool = None
    if settings.warm_pool is not None:
        pool = WarmPoolService(gce.warm_pool, settings.warm_pool, lambda: project_bucket(settings), api)
    return GceBackend(settings, api, pool)
