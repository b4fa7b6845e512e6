"""The usage page's charts in Chromium against a real ``reelgate serve``: the server's
SVG drawn in the page, the figures beside them equal to the API's, the period switch,
and the CSV download. The screenshot lands in docs/screenshots/ under
``make screenshots``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser.conftest import Server, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

CHART_TITLES = """(slot) => Array.from(
  document.querySelectorAll(`#${slot} svg title`), (t) => t.textContent)"""


def _finished(http: httpx.Client, job_id: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status: str = http.get(f"/v1/videos/{job_id}").json()["status"]
        if status in ("completed", "failed", "canceled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_usage_charts_show_spend_outcomes_and_time_to_video(page: Page, server: Server) -> None:
    with server.api() as http:
        made = [
            http.post(
                "/v1/videos",
                json={
                    "model": "local",
                    "prompt": f"chart {i}",
                    "duration_seconds": 1,
                    "resolution": "360p",
                },
            ).json()["id"]
            for i in range(3)
        ]
        stopped = http.post(
            "/v1/videos",
            json={
                "model": "local",
                "prompt": "never mind",
                "duration_seconds": 4,
                "resolution": "360p",
            },
        ).json()["id"]
        http.post(f"/v1/videos/{stopped}/cancel")
        assert [_finished(http, j) for j in made] == ["completed"] * 3
        _finished(http, stopped)
        month = http.get("/v1/usage/charts", params={"days": 30}).json()

    page.goto(f"{server.base}/?key={server.key}#/usage")
    page.wait_for_selector("#chart-spend svg rect")
    page.wait_for_selector("#chart-times svg rect")
    spend = page.evaluate(CHART_TITLES, "chart-spend")
    assert spend[0] == "Spend per day by model, last 30 days"
    assert any(" · local: " in t and "credits (USD " in t for t in spend)
    outcomes = page.evaluate(CHART_TITLES, "chart-outcomes")
    assert any(" · completed: " in t for t in outcomes)
    times = page.evaluate(CHART_TITLES, "chart-times")
    assert any(t.startswith("local: p50 ") for t in times)
    totals = page.inner_text("#chart-totals")
    counts = month["outcomes"]["counts"]
    assert f"{counts['completed']} completed" in totals
    assert month["spend"]["total_money"]["amount"] in totals
    assert page.get_attribute('#chart-days button[data-days="30"]', "aria-pressed") == "true"
    # the charts sit beside the recent-requests table
    page.wait_for_selector(f'#usage-rows tr[data-job="{made[-1]}"]')
    screenshot(page, "usage-charts")

    page.click('#chart-days button[data-days="7"]')
    page.wait_for_function(
        "() => document.querySelector('#chart-spend svg title').textContent.includes('7 days')"
    )
    assert page.get_attribute('#chart-days button[data-days="7"]', "aria-pressed") == "true"
    assert page.get_attribute('#chart-days button[data-days="30"]', "aria-pressed") == "false"

    with page.expect_download() as info:
        page.click("#usage-export")
    download = info.value
    assert download.suggested_filename.startswith("reelgate-usage-")
    lines = open(download.path(), encoding="utf-8").read().splitlines()  # noqa: SIM115
    assert lines[0].startswith("job_id,")
    assert any(line.startswith(made[0] + ",") for line in lines[1:])
