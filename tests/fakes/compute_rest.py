"""The fake Compute server's REST routes and handlers (but insert): operations, get/list, metadata, delete."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.compute_filter import matches_filter, parse_filter
from tests.fakes.compute_rules import (
    API_ROOT,
    OPERATION_WAIT_MAX_SECONDS,
    ZONE_RE,
    ApiError,
    check_labels,
    check_metadata_items,
    new_fingerprint,
    utc_stamp,
)
from tests.fakes.compute_runner import SandboxRunner
from tests.fakes.compute_store import FakeInstance, Request
from tests.fakes.fake_metadata import NUMERIC_PROJECT_ID

# -- routes -----------------------------------------------------------------------------------

_P = r"^/compute/v1/projects/(?P<project>[^/]+)"
_IMG = r"^/compute/v1/projects/(?P<image_project>[^/]+)/global/images/family/(?P<family>[^/]+)$"
_I = _P + r"/zones/(?P<zone>[^/]+)/instances"
_O = _P + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_I + r"$"), "_insert"),
    ("GET", re.compile(_I + r"$"), "_list"),
    ("GET", re.compile(_I + r"/(?P<name>[^/]+)$"), "_get"),
    ("DELETE", re.compile(_I + r"/(?P<name>[^/]+)$"), "_delete"),
    ("POST", re.compile(_I + r"/(?P<name>[^/]+)/setMetadata$"), "_set_metadata"),
    ("POST", re.compile(_I + r"/(?P<name>[^/]+)/setLabels$"), "_set_labels"),
    ("GET", re.compile(_I + r"/(?P<name>[^/]+)/serialPort$"), "_serial_port"),
    ("GET", re.compile(_O + r"$"), "_get_operation"),
    ("POST", re.compile(_O + r"/wait$"), "_wait_operation"),
    ("GET", re.compile(_P + r"/aggregated/instances$"), "_aggregated_list"),
    ("GET", re.compile(_P + r"$"), "_get_project"),
    ("GET", re.compile(_IMG), "_image_from_family"),
]


class RestApi(SandboxRunner):
    """Routes a request to its handler; serves operations, projects, images and instances."""

    # -- request dispatch ------------------------------------------------------------------

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Route one request; returns (HTTP status, JSON payload) or raises ApiError."""
        for route_method, pattern, handler_name in ROUTES:
            match = pattern.match(path)
            if match is None or route_method != method:
                continue
            params = match.groupdict()
            self._check_scope(params)
            handler: Callable[[Request], tuple[int, Any]] = getattr(self, handler_name)
            return handler((params, query, body))
        raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server.")

    def _check_scope(self, params: dict[str, str]) -> None:
        if "image_project" in params:  # public images live in their publishers' projects
            return
        if params["project"] != self.project:
            raise ApiError(404, "notFound", f"The resource 'projects/{params['project']}' was not found")
        zone = params.get("zone")
        if zone is not None and not ZONE_RE.fullmatch(zone):
            raise ApiError(
                404, "notFound", f"The resource 'projects/{self.project}/zones/{zone}' was not found"
            )

    # -- operations, project, images ------------------------------------------------------

    def _get_operation(self, request: Request) -> tuple[int, Any]:
        params = request[0]
        key = (params["zone"], params["op"])
        with self._lock:
            op = self._operations.get(key)
            done_at = self._done_at.get(key)
        if op is None:
            where = f"projects/{self.project}/zones/{params['zone']}/operations/{params['op']}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        with self._lock:
            if done_at is not None and time.monotonic() >= done_at:
                del self._done_at[key]
                op.update(status="DONE", progress=100, endTime=utc_stamp())
            return 200, self._public(op)

    def _wait_operation(self, request: Request) -> tuple[int, Any]:
        """zoneOperations.wait: hold the request until the operation is DONE (at most two minutes)."""
        params = request[0]
        with self._lock:
            done_at = self._done_at.get((params["zone"], params["op"]))
        if done_at is not None:
            self._stopping.wait(min(max(0.0, done_at - time.monotonic()), OPERATION_WAIT_MAX_SECONDS))
        return self._get_operation(request)

    def _get_project(self, request: Request) -> tuple[int, Any]:
        return 200, {
            "kind": "compute#project",
            "id": NUMERIC_PROJECT_ID,
            "name": self.project,
            "selfLink": f"{API_ROOT}/projects/{self.project}",
            "defaultServiceAccount": self.default_service_account,
        }

    def _image_from_family(self, request: Request) -> tuple[int, Any]:
        project, family = request[0]["image_project"], request[0]["family"]
        with self._lock:
            known = (project, family) in self.image_families
        if not known:
            where = f"projects/{project}/global/images/family/{family}"
            raise ApiError(404, "notFound", f"The resource '{where}' was not found")
        name = f"{family}-v20260101"
        return 200, {
            "kind": "compute#image",
            "name": name,
            "family": family,
            "status": "READY",
            "selfLink": f"{API_ROOT}/projects/{project}/global/images/{name}",
        }

    # -- get / list / serial port ----------------------------------------------------------

    def _get(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            return 200, self._lookup(request[0]).to_json()

    def _list(self, request: Request) -> tuple[int, Any]:
        params, query, _body = request
        zone = params["zone"]
        terms = parse_filter(query.get("filter", ""))
        with self._lock:
            found = [i.to_json() for (z, _n), i in sorted(self._instances.items()) if z == zone]
        items = [item for item in found if matches_filter(item, terms)]
        start = int(query.get("pageToken") or 0)
        size = int(query.get("maxResults") or 500)
        page = items[start : start + size]
        zone_url = f"{API_ROOT}/projects/{self.project}/zones/{zone}"
        payload: dict[str, Any] = {
            "kind": "compute#instanceList",
            "id": f"projects/{self.project}/zones/{zone}/instances",
        }
        payload["selfLink"] = f"{zone_url}/instances"
        if page:
            payload["items"] = page
        if start + size < len(items):
            payload["nextPageToken"] = str(start + size)
        return 200, payload

    def _aggregated_list(self, request: Request) -> tuple[int, Any]:
        terms = parse_filter(request[1].get("filter", ""))
        with self._lock:
            found = [(z, i.to_json()) for (z, _n), i in sorted(self._instances.items())]
        scopes: dict[str, Any] = {}
        for zone, item in found:
            if matches_filter(item, terms):
                scopes.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(item)
        payload = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{self.project}/aggregated/instances",
        }
        return 200, {
            **payload,
            "items": scopes,
            "selfLink": f"{API_ROOT}/projects/{self.project}/aggregated/instances",
        }

    def _serial_port(self, request: Request) -> tuple[int, Any]:
        params, query, _body = request
        with self._lock:
            text = self._lookup(params).console()
        start = max(0, int(query.get("start") or 0))
        data = text.encode()
        return 200, {
            "kind": "compute#serialPortOutput",
            "contents": data[start:].decode(errors="replace"),
            "start": str(start),
            "next": str(len(data)),
        }

    # -- setMetadata / setLabels -----------------------------------------------------------

    def _set_metadata(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        body = body if isinstance(body, dict) else {}
        call = {
            "name": params["name"],
            "zone": params["zone"],
            "fingerprint": body.get("fingerprint"),
            "ok": False,
        }
        with self._lock:
            self.set_metadata_calls.append(call)
            instance = self._lookup(params)
            if body.get("fingerprint") != instance.metadata_fingerprint:
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Supplied fingerprint does not match current metadata fingerprint.",
                )
            items = check_metadata_items(body.get("items"), "metadata.items")
            old, instance.metadata = instance.metadata, items
            instance.metadata_fingerprint = new_fingerprint(items)
            call.update(ok=True, items=dict(items), time=time.time())
            self._note_run_label(instance)
            self._sync_metadata_server(instance, old)
            return 200, self._operation(instance.zone, "setMetadata", instance)

    @staticmethod
    def _sync_metadata_server(instance: FakeInstance, old: dict[str, str]) -> None:
        server = instance.metadata_server
        if server is None:
            return
        for key in old.keys() - instance.metadata.keys():
            server.set_attribute(key, None)
        for key, value in instance.metadata.items():
            if old.get(key) != value:
                server.set_attribute(key, value)

    def _set_labels(self, request: Request) -> tuple[int, Any]:
        params, _query, body = request
        body = body if isinstance(body, dict) else {}
        call = {
            "name": params["name"],
            "zone": params["zone"],
            "fingerprint": body.get("labelFingerprint"),
            "ok": False,
        }
        with self._lock:
            self.set_labels_calls.append(call)
            instance = self._lookup(params)
            if body.get("labelFingerprint") != instance.label_fingerprint:
                raise ApiError(
                    412,
                    "conditionNotMet",
                    "Labels fingerprint either invalid or resource labels have changed",
                )
            instance.labels = check_labels(body.get("labels"))
            instance.label_fingerprint = new_fingerprint(instance.labels)
            self._note_run_label(instance)
            call.update(ok=True, labels=dict(instance.labels), time=time.time())
            return 200, self._operation(instance.zone, "setLabels", instance)

    # -- delete ----------------------------------------------------------------------------

    def _delete(self, request: Request) -> tuple[int, Any]:
        params = request[0]
        with self._lock:
            instance = self._lookup(params)
            del self._instances[(instance.zone, instance.name)]
            self.deletes.append(instance.name)
            op = self._operation(instance.zone, "delete", instance)
        self._power_off(instance)
        if instance.metadata_server is not None:
            instance.metadata_server.stop()
        return 200, op
