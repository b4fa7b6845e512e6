"""The web studio clicked through in Chromium, as a person would use it, against a
real ``reelgate serve``. Screenshots of each page land in docs/screenshots/ under
``make screenshots``."""

from __future__ import annotations

import json
import uuid
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Server, account_without_credits, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.slow

# Every value the progress bar shows, recorded by the page itself so that none is
# missed between two looks from the test.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  window.__texts = [];
  const bar = document.getElementById('progress');
  const text = document.getElementById('status-text');
  new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
    .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
  new MutationObserver(() => window.__texts.push(
      [Number(bar.getAttribute('aria-valuenow')), text.textContent]))
    .observe(text, { childList: true, characterData: true, subtree: true });
}"""
VIDEO_PLAYING = """() => {
  const v = document.getElementById('video');
  return v.readyState >= 2 && v.currentTime > 0 && !v.paused;
}"""
VIDEO_DURATION = "() => document.getElementById('video').duration"


def _trim(credits: str) -> str:
    """The page shows credits without trailing zeros: "2.000" -> "2", "1.500" -> "1.5"."""
    return credits.rstrip("0").rstrip(".") if "." in credits else credits


def _options(page: Page, select: str) -> list[str]:
    values: list[str] = page.eval_on_selector_all(
        f"{select} option", "(opts) => opts.map((o) => o.value)"
    )
    return values


def _open_studio(page: Page, server: Server, key: str | None = None) -> None:
    page.goto(f"{server.base}/?key={key or server.key}")
    page.wait_for_selector('.model-card[data-model="local"]')


def _choose_local_2s_360p(page: Page, prompt: str) -> None:
    page.click('.model-card[data-model="local"]')
    page.select_option("#resolution", "360p")
    page.select_option("#duration", "2")
    page.select_option("#aspect", "16:9")
    page.fill("#prompt", prompt)


def test_studio_renders_a_local_video_live_then_usage_lists_it(page: Page, server: Server) -> None:
    _open_studio(page, server)
    # the key moved from the address bar into this browser's storage
    assert "key=" not in page.url
    assert page.evaluate("() => localStorage.getItem('reelgate.apiKey')") == server.key
    assert page.is_checked('.model-card[data-model="local"] input')

    _choose_local_2s_360p(
        page, f"A red fox trots through fresh snow, camera tracking {uuid.uuid4().hex[:6]}"
    )
    assert "2 credits ($0.02)" in page.inner_text("#estimate")  # credits, and the money
    page.evaluate(RECORD_PROGRESS)
    page.click("#submit")

    page.wait_for_function(
        """() => document.getElementById('job-badge').classList.contains('in_progress')
             && Number(document.getElementById('progress').getAttribute('aria-valuenow')) >= 5"""
    )
    screenshot(page, "studio-rendering")
    job_id = page.inner_text("#job-id")
    assert job_id.startswith("video_")

    page.wait_for_selector("#result", state="visible", timeout=45_000)
    page.wait_for_function(VIDEO_PLAYING)
    assert page.evaluate(VIDEO_DURATION) == pytest.approx(2.0, abs=0.1)

    seen: list[int] = page.evaluate("() => window.__progress")
    rises = sum(1 for a, b in pairwise(seen) if b > a)
    assert rises >= 2 and seen[-1] == 100, f"progress should rise in steps: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    texts: list[list[Any]] = page.evaluate("() => window.__texts")
    storing = [p for p, t in texts if t.startswith("Storing")]
    assert all(p >= 90 for p in storing), f"'Storing' before the storing band: {texts}"

    with server.api() as http:
        job: dict[str, Any] = http.get(f"/v1/videos/{job_id}").json()
        assert job["status"] == "completed"
        assert page.inner_text("#status-text").startswith("Done")
        assert page.inner_text("#meta-cost") == (
            f"{_trim(job['cost']['credits'])} credits (${job['cost']['money']['amount']})"
        )
        assert page.inner_text("#meta-model") == job["delivered_by"] == "local"
        assert page.inner_text("#meta-duration") == "2 s"
        download = page.locator("#download")
        # a signed URL: same file, fresh expiry and signature on each read
        href = download.get_attribute("href") or ""
        assert href.split("?")[0] == job["result"]["url"].split("?")[0]
        assert download.get_attribute("download") == f"{job_id}.mp4"
        video = http.get(href)
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    screenshot(page, "studio-done")

    page.click("#nav-usage")
    row = page.locator(f'#usage-rows tr[data-job="{job_id}"]')
    row.wait_for()
    cells = row.locator("td").all_text_contents()
    assert cells[0] == job_id
    assert cells[1:5] == ["local", "local", "completed", "2"]
    assert cells[5] == f"{_trim(job['cost']['credits'])} ${job['cost']['money']['amount']}"
    with server.api() as http:
        balance = http.get("/v1/balance").json()
    assert page.inner_text("#bal-available").replace(",", "") == _trim(balance["available"])
    assert page.inner_text("#bal-available-money") == f"(${balance['money']['available']})"
    screenshot(page, "usage")

    # the job's link opens it in the studio, and survives a reload
    row.locator("a.job-link").click()
    assert page.url.endswith(f"#/jobs/{job_id}")
    page.reload()
    page.wait_for_function(VIDEO_PLAYING)
    assert page.inner_text("#job-id") == job_id
    assert page.is_visible("#view-studio") and not page.is_visible("#view-usage")


def test_the_duration_select_only_offers_what_the_model_allows_at_that_resolution(
    page: Page, server: Server
) -> None:
    with server.api() as http:
        models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}

    def veo_usable(route: Route) -> None:
        # Veo is not configured on this gateway; pretend it is so its 1080p-only-at-8-s
        # rule (allowedParams.duration_seconds_by_resolution) can be seen in the page.
        body = route.fetch().json()
        for m in body["data"]:
            if m["id"] == "veo-3-1":
                m.update(usable=True, available=True, not_usable_reason=None)
        route.fulfill(json=body)

    page.route("**/v1/models*", veo_usable)
    _open_studio(page, server)

    page.click('.model-card[data-model="local"]')
    local = models["local"]["allowedParams"]
    for resolution in local["resolution"]:
        page.select_option("#resolution", resolution)
        assert _options(page, "#duration") == [str(d) for d in local["duration_seconds"]]
    assert "21" not in _options(page, "#duration") and "0" not in _options(page, "#duration")

    page.click('.model-card[data-model="veo-3-1"]')
    veo = models["veo-3-1"]["allowedParams"]
    assert veo["duration_seconds_by_resolution"] == {"1080p": [8]}
    page.select_option("#resolution", "720p")
    assert _options(page, "#duration") == ["4", "6", "8"]
    page.select_option("#duration", "4")
    page.select_option("#resolution", "1080p")
    assert _options(page, "#duration") == ["8"]
    assert page.input_value("#duration") == "8"
    # controls follow allowedParams: no seed for Veo, an image input, a negative prompt
    assert not page.is_visible("#field-seed")
    assert page.is_visible("#field-image") and page.is_visible("#field-negative")

    # a model this gateway cannot run is shown, disabled, with its reason
    sora = page.locator('.model-card[data-model="sora-2"]')
    assert sora.locator("input").is_disabled()
    assert models["sora-2"]["not_usable_reason"] in sora.inner_text()


def test_insufficient_credits_shows_balance_needed_and_shortfall(
    page: Page, server: Server
) -> None:
    key = account_without_credits(server)
    _open_studio(page, server, key)
    _choose_local_2s_360p(page, "a lighthouse beam sweeping over a night sea")
    page.click("#submit")
    box = page.locator('#form-messages .alert[data-kind="error"]')
    box.wait_for()

    with server.api(key) as http:
        answer = http.post(
            "/v1/videos",
            json={
                "model": "local",
                "prompt": "a lighthouse beam sweeping over a night sea",
                "duration_seconds": 2,
                "resolution": "360p",
                "aspect_ratio": "16:9",
            },
        )
    assert answer.status_code == 402
    error = answer.json()["error"]
    text = box.inner_text()
    assert "Not enough credits" in text
    facts = dict(
        zip(
            box.locator("dt").all_text_contents(),
            box.locator("dd").all_text_contents(),
            strict=True,
        )
    )
    assert facts["Balance"] == f"{_trim(error['balance'])} credits"
    assert facts["Needed for this job"] == f"{_trim(error['hold_needed'])} credits"
    assert facts["Shortfall"] == f"{_trim(error['shortfall'])} credits"
    assert page.is_hidden("#job-view")  # nothing was started
    screenshot(page, "studio-insufficient-credits")


def test_without_a_key_the_page_says_where_to_find_one(page: Page, server: Server) -> None:
    page.goto(server.base)
    notice = page.locator("#key-notice")
    notice.wait_for()
    assert "reelgate serve" in notice.inner_text()
    page.fill("#api-key", server.key)
    page.click("#key-form button")
    page.wait_for_selector('.model-card[data-model="local"]')
    assert notice.is_hidden()


def test_a_rejected_key_is_shown_as_rejected(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/?key=rg_not_a_key_of_this_gateway_0123456789")
    chip = page.locator("#balance-chip")
    page.wait_for_function(
        "() => document.getElementById('balance-chip').classList.contains('rejected')"
    )
    assert chip.inner_text().strip() == "key rejected"
    notice = page.locator("#key-notice")
    assert notice.is_visible()
    assert "not valid" in notice.inner_text()
    page.fill("#api-key", server.key)
    page.click("#key-form button")
    page.wait_for_selector('.model-card[data-model="local"]')
    page.wait_for_function(
        "() => !document.getElementById('balance-chip').classList.contains('rejected')"
    )
    assert "credits" in chip.inner_text()


# ───────── outcomes the local renderer cannot produce, answered per the API contract ─────────


def _job(**fields: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "id": "video_canned0001",
        "object": "video",
        "model": "local",
        "status": "queued",
        "progress": 0,
        "prompt": "a crowd of people waving",
        "created_at": 1_700_000_000,
        "completed_at": None,
        "seconds": "2",
        "size": "640x360",
        "params": {},
        "fallback": [],
        "delivered_by": None,
        "result": None,
        "error": None,
        "attempts": [],
        "units_consumed": None,
        "cost": None,
        "metadata": {},
    }
    job.update(fields)
    return job


REFUSED = _job(
    status="failed",
    progress=5,
    error={"code": "refused", "message": "sora-2 refused this request on safety grounds."},
    attempts=[{"model": "sora-2", "upstream_id": "u1", "outcome": "refused", "error": None}],
)
QUOTA_FALLBACK = _job(
    model="veo-3-1-fast",
    status="completed",
    progress=100,
    fallback=["local"],
    delivered_by="local",
    cost={"credits": "4.000", "millicredits": 4000, "money": {"amount": "0.04", "currency": "USD"}},
    result={"url": "/static/favicon.svg", "duration_seconds": 4, "width": 1280, "height": 720},
    attempts=[
        {"model": "veo-3-1-fast", "upstream_id": None, "outcome": "quota", "error": None},
        {"model": "local", "upstream_id": "r1", "outcome": "completed", "error": None},
    ],
)
TIMED_OUT = _job(
    status="failed",
    progress=42,
    error={"code": "timeout", "message": "The video was not ready before the job's deadline."},
)


@pytest.mark.parametrize(
    ("final", "title", "detail"),
    [
        (REFUSED, "reword the prompt", "Refusals are not retried"),
        (QUOTA_FALLBACK, "Delivered by local, a fallback", "veo-3-1-fast was out of quota"),
        (TIMED_OUT, "Timed out", "Resubmit, or try a faster model"),
    ],
    ids=["refused", "quota-fallback", "timeout"],
)
def test_job_outcomes_are_explained_when_following_by_polling(
    page: Page, server: Server, final: dict[str, Any], title: str, detail: str
) -> None:
    """The gateway answers per the contract; its events endpoint is absent (404),
    so the page falls back to polling GET /v1/videos/{id}."""
    answers = iter([_job(status="in_progress", progress=30)])

    def videos(route: Route) -> None:
        url = route.request.url
        if route.request.method == "POST":
            route.fulfill(status=202, json=_job())
        elif url.endswith("/events"):
            route.fulfill(status=404, json={"error": {"code": "not_found", "message": "No route"}})
        else:
            route.fulfill(json=next(answers, final))

    page.route("**/v1/videos**", videos)
    _open_studio(page, server)
    _choose_local_2s_360p(page, "a crowd of people waving")
    page.click("#submit")
    box = page.locator("#job-messages .alert")
    box.wait_for()
    text = box.inner_text()
    assert title in text and detail in text
    if final["status"] == "completed":
        assert page.inner_text("#meta-model") == "local"
        assert page.inner_text("#meta-cost") == "4 credits ($0.04)"


def test_a_validation_error_shows_the_message_and_the_allowed_values(
    page: Page, server: Server
) -> None:
    error: dict[str, Any] = {
        "code": "invalid_parameter",
        "message": "duration_seconds=2 is not offered by model 'local' at 360p; choose one of [4].",
        "param": "duration_seconds",
        "allowed": [4],
    }
    page.route(
        "**/v1/videos",
        lambda route: route.fulfill(
            status=400, content_type="application/json", body=json.dumps({"error": error})
        ),
    )
    _open_studio(page, server)
    _choose_local_2s_360p(page, "a paper boat drifting down a gutter stream")
    page.click("#submit")
    box = page.locator("#form-messages .alert")
    box.wait_for()
    assert error["message"] in box.inner_text()
    assert box.locator(".allowed code").all_inner_texts() == ["4"]
