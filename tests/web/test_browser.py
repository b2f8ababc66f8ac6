"""The dashboard in a real headless Chromium: what a person sees on each page, and that it stays live.

Every page load also checks that the browser logged no console error and sent no request
anywhere but the dashboard's own loopback address. Screenshots go to ``.artifacts/screenshots``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from goldfish.context import ServerContext
from goldfish.states import StageState
from tests.web.conftest import Served
from tests.web.project import DashboardProject, write_log

WAIT_SECONDS = 15


def _open(browser: WebDriver, served: Served, path: str) -> None:
    browser.get(served.url + path)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def _log(browser: WebDriver, kind: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = browser.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def _check_clean(browser: WebDriver, served: Served) -> None:
    """No console errors; every request went to the dashboard itself (or was inline data)."""
    errors = [entry for entry in _log(browser, "browser") if entry["level"] == "SEVERE"]
    assert errors == []
    requested = []
    for entry in _log(browser, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested, "the performance log recorded no requests"
    outside = [url for url in requested if not url.startswith((served.url + "/", "data:"))]
    assert outside == []


def _shot(browser: WebDriver, folder: Path, name: str) -> None:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(int(height) + 40, 800), 4000))
    browser.save_screenshot(str(folder / f"{name}.png"))
    browser.set_window_size(1400, 1000)


def _compared(browser: WebDriver) -> list[str]:
    return str(browser.current_url).split("runs=", 1)[1].split(",")


def _text(browser: WebDriver) -> str:
    return str(browser.find_element(By.TAG_NAME, "body").text)


def _size(browser: WebDriver, css: str) -> dict[str, Any]:
    element = browser.find_element(By.CSS_SELECTOR, css)
    rect: dict[str, Any] = browser.execute_script(
        "return arguments[0].getBoundingClientRect().toJSON()", element
    )
    return rect


def test_overview_shows_workspaces_best_result_and_running_stage(
    browser: WebDriver,
    served: Served,
    dashboard_project: DashboardProject,
    project_context: ServerContext,
    screenshots: Path,
) -> None:
    _open(browser, served, "/")
    text = _text(browser)
    assert "mnist-sweeps" in text
    assert "baseline" in text and "wider-net" in text
    assert "val_loss 0.1234" in text  # baseline's best finalized result
    running = browser.find_element(By.ID, "running").text
    assert dashboard_project.live_train in running and "running" in running
    _check_clean(browser, served)
    _shot(browser, screenshots, "overview")
    browser.execute_script("window.__sameDocument = true;")
    runs = project_context.runs
    assert runs.transition(dashboard_project.live_train, StageState.RUNNING, StageState.FAILED, "exited")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: dashboard_project.live_train not in b.find_element(By.ID, "running").text
    )
    assert "Running now (1)" in browser.find_element(By.ID, "running").text
    assert dashboard_project.live_train in browser.find_element(By.ID, "alerts").text  # now a failed run
    assert browser.execute_script("return window.__sameDocument === true")
    _check_clean(browser, served)


def test_runs_page_lists_runs_newest_first_and_compares_the_ones_picked(
    browser: WebDriver, served: Served, dashboard_project: DashboardProject, screenshots: Path
) -> None:
    _open(browser, served, "/runs")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.runs tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text for row in rows] == [
        dashboard_project.live,
        dashboard_project.failed,
        dashboard_project.other,
        dashboard_project.done,
    ]
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.runs th")]
    assert "TRAIN.HIDDEN" in headers  # the config value that differs between the runs
    _check_clean(browser, served)
    _shot(browser, screenshots, "runs")
    for run_id in (dashboard_project.done, dashboard_project.other):
        browser.find_element(By.CSS_SELECTOR, f'input.pick[value="{run_id}"]').click()
    button = browser.find_element(By.ID, "compare-picked")
    assert button.is_enabled() and button.text == "Compare 2 runs"
    button.click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: "/compare?runs=" in b.current_url)
    assert _compared(browser) == [dashboard_project.done, dashboard_project.other]  # oldest is the baseline
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "figure.chart polyline")
    )
    text = _text(browser)
    assert "train_loss" in text and "val_loss" in text
    assert "hidden" in text  # the config diff
    assert "modules/train.py" in text  # the code diff
    lines = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")[0].find_elements(
        By.TAG_NAME, "polyline"
    )
    assert len(lines) == 2  # both runs overlaid
    chart = _size(browser, "figure.chart svg")
    assert chart["width"] > 200 and chart["height"] > 100
    _check_clean(browser, served)
    _shot(browser, screenshots, "compare")


def test_run_page_follows_the_running_stage_without_a_reload(
    browser: WebDriver,
    served: Served,
    dashboard_project: DashboardProject,
    project_context: ServerContext,
    screenshots: Path,
) -> None:
    _open(browser, served, f"/runs/{dashboard_project.live}")
    node = 'g.dag-node[data-stage="train"]'
    assert "state-running" in str(browser.find_element(By.CSS_SELECTOR, node).get_attribute("class"))
    chart = _size(browser, "#charts figure.chart svg")
    assert chart["width"] > 200 and chart["height"] > 100
    browser.execute_script("window.__sameDocument = true;")
    _shot(browser, screenshots, "run-live")

    train = dashboard_project.live_train
    write_log(project_context, train, ["train: saving the model to outputs/model"])
    runs = project_context.runs
    assert runs.transition(train, StageState.RUNNING, StageState.COLLECTING, "exited", exit_code=0)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "state-collecting" in str(b.find_element(By.CSS_SELECTOR, node).get_attribute("class"))
    )
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "saving the model" in b.find_element(By.ID, "log").text
    )
    assert runs.transition(train, StageState.COLLECTING, StageState.COMPLETED, "collected")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "state-completed" in str(b.find_element(By.CSS_SELECTOR, node).get_attribute("class"))
    )
    assert browser.find_element(By.CSS_SELECTOR, f"{node} [data-state-text]").text == "completed"
    assert browser.execute_script("return window.__sameDocument === true")  # no reload happened
    _check_clean(browser, served)
    _shot(browser, screenshots, "run-live-after")


def test_finished_run_page_shows_lineage_hashes_attempts_and_svs(
    browser: WebDriver, served: Served, dashboard_project: DashboardProject, screenshots: Path
) -> None:
    _open(browser, served, f"/runs/{dashboard_project.done}?stage=train")
    text = _text(browser)
    assert "Stage train" in text
    inputs = browser.find_elements(By.CSS_SELECTOR, "section.card")
    titles = [section.find_element(By.TAG_NAME, "h2").text for section in inputs]
    for title in ("Logs", "Metrics", "Inputs", "Outputs", "SVS statistics and findings", "Attempts"):
        assert title in titles
    producer = browser.find_element(By.XPATH, "//section[.//h2='Inputs']//a")
    assert producer.text.endswith("00")  # the prep stage run that produced the features
    assert "000000000000" in browser.find_element(By.XPATH, "//section[.//h2='Inputs']").text  # hash prefix
    assert "No SVS findings for this stage." in text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#charts figure.chart polyline")) == 2
    _check_clean(browser, served)
    _shot(browser, screenshots, "run-finished")
    producer.click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: "Stage prep" in _text(b))


def test_failed_run_page_shows_why_the_attempt_failed(
    browser: WebDriver, served: Served, dashboard_project: DashboardProject, screenshots: Path
) -> None:
    _open(browser, served, f"/runs/{dashboard_project.failed}")
    attempts = browser.find_element(By.ID, "attempts").text
    assert "CUDA out of memory" in attempts and "stage_error" in attempts
    classes = {
        stage: str(
            browser.find_element(By.CSS_SELECTOR, f'g.dag-node[data-stage="{stage}"]').get_attribute("class")
        )
        for stage in ("prep", "train", "evaluate")
    }
    assert "state-completed" in classes["prep"] and "selected" in classes["train"]
    assert "state-failed" in classes["train"] and "state-skipped" in classes["evaluate"]
    _check_clean(browser, served)
    _shot(browser, screenshots, "run-failed")


def test_workspace_page_shows_versions_tags_and_thoughts(
    browser: WebDriver, served: Served, dashboard_project: DashboardProject, screenshots: Path
) -> None:
    _open(browser, served, "/workspaces/baseline")
    text = _text(browser)
    assert "baseline with a wider hidden layer" in text  # v2's message
    assert "best-so-far" in text
    assert "overfits after epoch 40" in text
    assert dashboard_project.done in text
    _check_clean(browser, served)
    _shot(browser, screenshots, "workspace")


@pytest.mark.parametrize("path", ["/runs/prun-000000000999", "/workspaces/nope"])
def test_unknown_run_or_workspace_shows_a_not_found_page(
    browser: WebDriver, served: Served, path: str
) -> None:
    _open(browser, served, path)
    assert "404" in _text(browser)
