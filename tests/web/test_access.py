"""The dashboard's JSON API and its access rules, over real HTTP on loopback (no browser)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from goldfish.cli.app import main
from goldfish.context import ServerContext
from goldfish.server.app import http_app
from goldfish.server.app_state import GoldfishApp
from goldfish.web.serving import ThreadedServer
from tests.e2e.gce_support import wait_for
from tests.integration.pipeline_fixtures import reaped_at_exit
from tests.web.conftest import Served
from tests.web.project import DashboardProject


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - http on loopback
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_api_answers_json_a_person_can_curl(served: Served, dashboard_project: DashboardProject) -> None:
    status, headers, body = _get(f"{served.url}/api/runs?state=running")
    assert status == 200 and headers["content-type"] == "application/json"
    page = json.loads(body)
    assert [run["pipeline_run_id"] for run in page["runs"]] == [dashboard_project.live]
    status, _, body = _get(
        f"{served.url}/api/runs/{dashboard_project.live}/live?stage={dashboard_project.live_train}"
    )
    live = json.loads(body)
    assert live["active"] is True
    assert [s["status"] for s in live["stages"]] == ["completed", "running", "pending"]
    assert live["stages"][2]["depends_on"] == ["train"]  # from the version's pipeline.yaml
    status, _, body = _get(
        f"{served.url}/api/runs/{dashboard_project.live}/live?cursor={live['logs']['cursor']}"
        f"&stage={dashboard_project.live_train}"
    )
    assert json.loads(body)["logs"]["lines"] == []  # nothing new after the cursor


def test_api_errors_are_structured_with_the_services_codes(served: Served) -> None:
    status, _, body = _get(f"{served.url}/api/runs/prun-000000000999")
    assert status == 404
    assert json.loads(body)["error"]["code"] == "RUN_NOT_FOUND"
    status, _, body = _get(f"{served.url}/api/runs?state=sleeping")
    assert status == 400
    assert json.loads(body) == {"success": False, "error": json.loads(body)["error"]}
    assert json.loads(body)["error"]["code"] == "INVALID_ARGUMENT"


def test_every_answer_carries_a_strict_content_security_policy(served: Served) -> None:
    _, headers, _ = _get(f"{served.url}/")
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["server-timing"].startswith("app;dur=")


def test_loopback_dashboard_refuses_requests_addressed_to_another_host(served: Served) -> None:
    status, _, _ = _get(f"{served.url}/api/overview", {"Host": "attacker.example:80"})
    assert status == 403


def test_with_a_token_every_request_must_carry_it(project_context: ServerContext) -> None:
    with Served(project_context, token="s3cret-token") as server:  # noqa: S106 - a test token
        assert _get(f"{server.url}/api/overview")[0] == 401
        assert _get(f"{server.url}/api/overview", {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(f"{server.url}/api/overview", {"Authorization": "Bearer s3cret-token"})[0] == 200
        status, headers, _ = _get(f"{server.url}/runs?token=s3cret-token&state=failed")
        assert status == 303 and headers["location"] == "/runs?state=failed"
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"]
        assert _get(f"{server.url}/runs?state=failed", {"Cookie": cookie})[0] == 200


def test_ui_refuses_a_non_loopback_address_without_a_token(
    dashboard_project: DashboardProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOLDFISH_UI_TOKEN", raising=False)
    code = main(["ui", "--project", str(dashboard_project.root), "--host", "0.0.0.0"])  # noqa: S104
    assert code == 2
    assert "without a token" in capsys.readouterr().err


@pytest.fixture
def http_server(dashboard_project: DashboardProject) -> Iterator[str]:
    """``goldfish serve --http``'s app on a free loopback port."""
    app = GoldfishApp(dashboard_project.root)
    # Loading the project starts drivers for its unfinished (made-up) runs: none may outlive the test.
    with reaped_at_exit(dashboard_project.root), ThreadedServer(http_app(app, "127.0.0.1", None)) as server:
        yield server.url
        app.close()


def test_serve_http_serves_the_pages_at_root_beside_mcp(
    http_server: str, dashboard_project: DashboardProject
) -> None:
    status, _, body = _get(f"{http_server}/")
    assert status == 200 and b"mnist-sweeps" in body
    status, _, body = _get(f"{http_server}/runs/{dashboard_project.done}")
    assert status == 200 and dashboard_project.done.encode() in body
    status, _, _ = _get(f"{http_server}/mcp")  # the MCP endpoint still answers (a GET without a session)
    assert status not in (404, 200)


def test_serve_http_on_all_interfaces_without_a_token_serves_only_mcp(tmp_path: Path) -> None:
    app = http_app(GoldfishApp(None), "0.0.0.0", None)  # noqa: S104
    paths = [getattr(route, "path", None) for route in app.router.routes]
    assert paths == ["/mcp"]


def test_a_stage_marked_running_with_no_recorded_process_ends_lost_once_a_driver_takes_its_run(
    dashboard_project: DashboardProject,
) -> None:
    context = ServerContext.open(dashboard_project.root)
    try:
        with reaped_at_exit(dashboard_project.root):
            context.startup()  # resumes a driver for every unfinished run

            def ended() -> bool:
                row = context.runs.stage_run(dashboard_project.live_train)
                return row is not None and row.state == "failed"

            wait_for(ended, 60, "the driver to settle the stage with no process")
        row = context.runs.stage_run(dashboard_project.live_train)
    finally:
        context.close()
    assert row is not None and row.failure_kind == "lost"
    assert "no recorded process" in (row.error or "")
