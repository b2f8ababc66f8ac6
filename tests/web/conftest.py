"""Fixtures of the dashboard tests: a project with run history, the dashboard served on loopback
by uvicorn in a thread, and a headless Chromium driven over WebDriver (selenium + chromium-driver).

Chromium comes from Debian (``scripts/ensure-chromium.sh``, run by ``make test``). Without it the
browser tests skip, except under ``CI=true`` where they fail: CI must run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from goldfish.context import ServerContext
from goldfish.project import initialize_project
from goldfish.web.app import build_dashboard
from goldfish.web.serving import ThreadedServer
from tests.conftest import set_finalization_gate, use_backend
from tests.web.project import DashboardProject, build

ARTIFACTS = Path(
    os.environ.get("GOLDFISH_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts")
)
CHROMIUM = ("chromium", "chromedriver")


@pytest.fixture
def dashboard_project(tmp_path: Path) -> DashboardProject:
    root = tmp_path / "project"
    initialize_project(str(root), "mnist-sweeps")
    set_finalization_gate(root, enabled=False)
    use_backend(root, "process")
    return build(root)


@pytest.fixture
def project_context(dashboard_project: DashboardProject) -> Iterator[ServerContext]:
    context = ServerContext.open(dashboard_project.root)
    yield context
    context.close()


class Served(ThreadedServer):
    """The dashboard of ``context`` on a free loopback port, in a thread."""

    def __init__(self, context: ServerContext, token: str | None = None):
        super().__init__(build_dashboard(lambda: context, token=token, loopback_only=not token))


@pytest.fixture
def served(project_context: ServerContext) -> Iterator[Served]:
    with Served(project_context) as server:
        yield server


def _chromium_missing() -> str | None:
    missing = [name for name in CHROMIUM if shutil.which(name) is None]
    return (
        f"{' and '.join(missing)} not installed (scripts/ensure-chromium.sh installs them)"
        if missing
        else None
    )


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Headless Chromium with console and network logs on (``goog:loggingPrefs``)."""
    reason = _chromium_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots() -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
