"""A real pipeline run (process backend, detached driver) watched on its dashboard page in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from goldfish.cli.app import main
from goldfish.context import ServerContext
from tests.integration.pipeline_fixtures import RESULTS_SPEC, THREE_STAGES, write_pipeline
from tests.integration.test_svs import MODULE as SVS_MODULE
from tests.integration.test_svs import PIPELINE as SVS_PIPELINE
from tests.web.conftest import Served

RUN_SECONDS = 60


def _classes(browser: WebDriver, stage: str) -> str:
    return str(
        browser.find_element(By.CSS_SELECTOR, f'g.dag-node[data-stage="{stage}"]').get_attribute("class")
    )


def test_run_page_follows_a_real_run_to_its_end(
    browser: WebDriver, project_root: Path, capsys: pytest.CaptureFixture[str], screenshots: Path
) -> None:
    context = ServerContext.open(project_root)
    try:
        context.workspaces.create("real", "a real three-stage run")
        slot = Path(context.workspaces.mount("real", "w1").slot_path)
        write_pipeline(slot, THREE_STAGES, {"train": {"sleep": 2.0, "metrics": 40, "lines": 5}})
        (slot / "results_spec.yaml").write_text(yaml.safe_dump(RESULTS_SPEC), encoding="utf-8")
        assert main(["run", "w1", "--project", str(project_root), "--json"]) == 0
        submission = json.loads(capsys.readouterr().out)
        run_id = submission["pipeline_run_id"]
        with Served(context) as served:
            browser.get(f"{served.url}/runs/{run_id}?stage=train")
            browser.execute_script("window.__sameDocument = true;")
            WebDriverWait(browser, RUN_SECONDS).until(lambda b: "state-completed" in _classes(b, "evaluate"))
            WebDriverWait(browser, RUN_SECONDS).until(
                lambda b: "train done" in b.find_element(By.ID, "log").text
            )
            assert "state-completed" in _classes(browser, "train")
            WebDriverWait(browser, RUN_SECONDS).until(  # the loss chart, drawn while the page is open
                lambda b: b.find_elements(By.CSS_SELECTOR, "#charts figure.chart polyline")
            )
            WebDriverWait(browser, RUN_SECONDS).until(  # facts rendered again once the stage ended
                lambda b: "EXIT CODE\n0" in b.find_element(By.ID, "stage-facts").text
            )
            assert "weights" not in browser.find_element(By.ID, "outputs").text
            assert "model" in browser.find_element(By.ID, "outputs").text
            assert browser.execute_script("return window.__sameDocument === true")
            browser.save_screenshot(str(screenshots / "real-run.png"))
    finally:
        context.close()


def test_run_page_shows_the_svs_warning_and_output_statistics_of_a_real_stage(
    browser: WebDriver, project_root: Path, capsys: pytest.CaptureFixture[str], screenshots: Path
) -> None:
    context = ServerContext.open(project_root)
    try:
        context.workspaces.create("checked", "a stage whose features break a warn rule")
        slot = Path(context.workspaces.mount("checked", "w1").slot_path)
        (slot / "pipeline.yaml").write_text(SVS_PIPELINE, encoding="utf-8")
        (slot / "modules").mkdir()
        (slot / "modules" / "make.py").write_text(SVS_MODULE, encoding="utf-8")
        (slot / "results_spec.yaml").write_text(yaml.safe_dump(RESULTS_SPEC), encoding="utf-8")
        assert main(["run", "w1", "--project", str(project_root), "--wait", "--json"]) == 0
        run_id = json.loads(capsys.readouterr().out)["pipeline_run_id"]
        with Served(context) as served:
            browser.get(f"{served.url}/runs/{run_id}?stage=make")
            WebDriverWait(browser, RUN_SECONDS).until(lambda b: b.find_elements(By.ID, "svs"))
            svs = browser.find_element(By.ID, "svs").text
            browser.execute_script("document.getElementById('svs').scrollIntoView()")
            browser.save_screenshot(str(screenshots / "run-svs.png"))
    finally:
        context.close()
    assert "features.nan_ratio" in svs and "No SVS findings" not in svs
    assert "600 values" in svs  # the features array: 200 x 3 values, summarised inside the stage
    assert "100 rows" in svs  # the labels table
