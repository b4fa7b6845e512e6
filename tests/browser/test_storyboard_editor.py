"""The studio's storyboard editor and a storyboard's page in Chromium, against a real
``reelgate serve --emulators`` (the ``local`` renderer and every provider's emulator,
one-second jobs): shots built and reordered in the page, submitted, followed to the
joined video, a shot the gateway refuses shown on that shot, and a shot that fails
upstream retried with a fixed prompt. Every figure the page shows is checked against
the API's answer. The screenshots land in docs/screenshots/ under ``make screenshots``.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.conftest import (
    Server,
    account_without_credits,
    screenshot,
    serving,
)

if TYPE_CHECKING:
    from playwright.sync_api import FilePayload, Locator, Page, Route

pytestmark = pytest.mark.slow

# Every value the storyboard's progress bar and stage text show, recorded by the page
# itself so that none is missed between two looks from the test.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  window.__stages = [];
  const bar = document.getElementById('sbp-progress');
  const stage = document.getElementById('sbp-stage');
  new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
    .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
  new MutationObserver(() => window.__stages.push(stage.textContent))
    .observe(stage, { childList: true, characterData: true, subtree: true });
}"""
BADGE_IS = "(s) => document.getElementById('sbp-badge').textContent === s"
VIDEO_READY = "() => document.getElementById('sbp-video').readyState >= 1"
SHOT_STATUS = "(n) => document.querySelector(`#sbp-shots [data-shot='${n}']`).dataset.status"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``reelgate serve --emulators`` on a free port with its own data dir, so a shot
    can run on an emulated ``grok-video`` (which fails a prompt with
    ``[fault:fail@grok]``) beside the ``local`` renderer."""
    root = tmp_path_factory.mktemp("storyboards")
    with serving(root, "--emulators", "--emulator-job-seconds", "1") as served:
        yield served


@pytest.fixture(scope="module")
def models(gateway: Server) -> dict[str, dict[str, Any]]:
    with gateway.api() as http:
        return {m["id"]: m for m in http.get("/v1/models?modality=video").json()["data"]}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _trim(credits: str) -> str:
    """The page shows credits without trailing zeros: "4.000" -> "4"."""
    return credits.rstrip("0").rstrip(".") if "." in credits else credits


def _credits(credits: str) -> str:
    trimmed = _trim(credits)
    return f"{trimmed} {'credit' if trimmed == '1' else 'credits'}"


def _path(url: str | None) -> str:
    """A signed URL without its query (each read signs afresh)."""
    assert url
    return urlsplit(url).path


def _card(page: Page, n: int) -> Locator:
    return page.locator(f'.shot-card[data-shot="{n}"]')


def _row(page: Page, n: int) -> Locator:
    return page.locator(f'#sbp-shots .sbp-shot[data-shot="{n}"]')


def _open_editor(page: Page, gateway: Server, key: str | None = None) -> None:
    page.goto(f"{gateway.base}/?key={key or gateway.key}#/storyboard")
    page.wait_for_selector(
        '.shot-card[data-shot="1"] .shot-model option[value="local"]', state="attached"
    )


def _set_shot(
    page: Page,
    n: int,
    prompt: str,
    *,
    model: str = "local",
    seconds: int = 1,
    resolution: str = "360p",
    aspect: str = "16:9",
) -> None:
    card = _card(page, n)
    card.locator(".shot-model").select_option(model)
    card.locator(".shot-resolution").select_option(resolution)
    card.locator(".shot-duration").select_option(str(seconds))
    card.locator(".shot-aspect").select_option(aspect)
    card.locator(".shot-prompt").fill(prompt)


def _add_shot(page: Page) -> int:
    count = page.locator(".shot-card").count()
    page.click("#sb-add")
    _card(page, count + 1).wait_for()
    return count + 1


def _prompts(page: Page) -> list[str]:
    values: list[str] = page.eval_on_selector_all(
        ".shot-card .shot-prompt", "(boxes) => boxes.map((b) => b.value)"
    )
    return values


def _options(select: Locator) -> list[str]:
    values: list[str] = select.evaluate("(s) => Array.from(s.options, (o) => o.value)")
    return values


def _width(node: Locator) -> float:
    box = node.bounding_box()
    assert box is not None
    return box["width"]


def _submitted_id(page: Page) -> str:
    page.wait_for_function("() => location.hash.startsWith('#/storyboards/storyboard_')")
    sb_id: str = page.evaluate("() => decodeURIComponent(location.hash.split('/')[2])")
    return sb_id


def _storyboard(gateway: Server, sb_id: str) -> dict[str, Any]:
    with gateway.api() as http:
        answer = http.get(f"/v1/storyboards/{sb_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _estimate(models: dict[str, dict[str, Any]], shots: list[tuple[str, int]]) -> tuple[str, str]:
    """What the page should estimate for (model, seconds) shots with no per-resolution
    prices: (credits, money) from each model's price per second."""
    millicredits = sum(models[m]["price"]["millicredits_per_second"] * s for m, s in shots)
    money = sum(Decimal(models[m]["price"]["money_per_second"]["amount"]) * s for m, s in shots)
    credits = Decimal(millicredits) / 1000
    return _credits(f"{credits:.3f}"), f"${money}"


def test_a_three_shot_storyboard_is_built_followed_to_completion_and_played(
    page: Page, gateway: Server, models: dict[str, dict[str, Any]]
) -> None:
    _open_editor(page, gateway)
    assert page.get_attribute("#nav-storyboard", "aria-current") == "page"
    tabs = page.eval_on_selector_all(".tabs a", "(links) => links.map((a) => a.textContent)")
    assert tabs == ["Studio", "Storyboard", "Gallery", "Usage"]
    # the model picker lists the usable models, and a shot's selects follow its model
    card = _card(page, 1)
    assert _options(card.locator(".shot-model")) == [
        m["id"] for m in models.values() if m["usable"]
    ]
    card.locator(".shot-model").select_option("grok-video")
    grok = models["grok-video"]["allowedParams"]
    assert _options(card.locator(".shot-resolution")) == grok["resolution"]
    assert _options(card.locator(".shot-duration")) == [str(d) for d in grok["duration_seconds"]]
    card.locator(".shot-model").select_option("local")
    local = models["local"]["allowedParams"]
    assert _options(card.locator(".shot-resolution")) == local["resolution"]
    assert _options(card.locator(".shot-duration")) == [str(d) for d in local["duration_seconds"]]

    # three shots, 1 + 2 + 1 s at 360p; the first with a start image
    _set_shot(page, 1, "A lighthouse on a cliff at dusk, slow push in", seconds=1)
    image = _png(64, 36, (30, 60, 120))
    start: FilePayload = {"name": "dusk.png", "mimeType": "image/png", "buffer": image}
    card.locator(".shot-image").set_input_files(files=start)
    card.locator(".image-drop img").wait_for()
    assert card.locator(".shot-image-name").inner_text() == "dusk.png"
    assert _add_shot(page) == 2
    # a new shot starts with the previous shot's settings
    assert _card(page, 2).locator(".shot-model").input_value() == "local"
    assert _card(page, 2).locator(".shot-resolution").input_value() == "360p"
    _set_shot(page, 2, "The lighthouse beam sweeps across the dark sea", seconds=2)
    assert _add_shot(page) == 3
    _set_shot(page, 3, "A small ship passes under the beam", seconds=1)

    # reorder, and add and remove a shot
    first, second, third = _prompts(page)
    _card(page, 3).locator('[data-role="up"]').click()
    assert _prompts(page) == [first, third, second]
    assert _card(page, 3).locator(".shot-duration").input_value() == "2"  # its settings move too
    _card(page, 2).locator('[data-role="down"]').click()
    assert _prompts(page) == [first, second, third]
    assert _card(page, 1).locator('[data-role="up"]').is_disabled()
    assert _card(page, 3).locator('[data-role="down"]').is_disabled()
    _add_shot(page)
    assert page.inner_text("#sb-total-shots") == "4"
    _card(page, 4).locator('[data-role="remove"]').click()
    assert page.locator(".shot-card").count() == 3
    assert _prompts(page) == [first, second, third]

    # the start image: every shot may carry one until "continue" is on; then only the first
    for n in (1, 2, 3):
        assert _card(page, n).locator(".shot-image-field").is_visible()
    page.check("#sb-continue")
    assert _card(page, 1).locator(".image-drop img").is_visible()
    for n in (2, 3):
        assert _card(page, n).locator(".shot-image-field").count() == 0
        assert _card(page, n).locator(".shot-from-frame").inner_text() == (
            f"Starts from shot {n - 1}'s last frame."
        )

    # the totals: shots, seconds less the crossfades, and the estimated cost
    cost, money = _estimate(models, [("local", 1), ("local", 2), ("local", 1)])
    assert page.inner_text("#sb-total-shots") == "3"
    assert page.inner_text("#sb-total-seconds") == "4 s"
    assert page.inner_text("#sb-total-cost").splitlines() == [cost, money] == ["4 credits", "$0.04"]
    crossfade = page.locator("#sb-crossfade")
    assert _options(crossfade) == ["0", "0.25", "0.5", "1"]
    # a crossfade must be shorter than every shot (the shortest is 1 s)
    assert crossfade.locator('option[value="1"]').is_disabled()
    crossfade.select_option("0.5")
    assert page.inner_text("#sb-total-seconds").splitlines() == [
        "3 s",
        "4 s of shots \u2212 2 \u00d7 0.5 s",  # minus, times
    ]
    crossfade.select_option("0")
    assert page.inner_text("#sb-total-seconds") == "4 s"
    screenshot(page, "storyboard-editor")

    page.evaluate(RECORD_PROGRESS)
    page.click("#sb-submit")
    sb_id = _submitted_id(page)
    assert page.get_attribute("#nav-storyboard", "aria-current") == "page"
    assert page.inner_text("#sbp-id") == sb_id

    # while it runs: a shot done, the next one being made, the storyboard in progress
    page.wait_for_function(
        f"""() => document.getElementById('sbp-badge').textContent === 'in progress'
              && ({SHOT_STATUS})(1) === 'completed' && ({SHOT_STATUS})(2) !== 'completed'""",
        timeout=45_000,
    )
    assert page.is_visible("#sbp-cancel")
    assert page.inner_text("#sbp-stage").startswith("Making shot 2/3")
    screenshot(page, "storyboard-progress")

    page.wait_for_function(BADGE_IS, arg="completed", timeout=60_000)
    sb = _storyboard(gateway, sb_id)
    assert sb["status"] == "completed" and sb["continue_from_previous"] is True
    assert sb["crossfade_seconds"] == 0
    seen: list[int] = page.evaluate("() => window.__progress")
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert sum(1 for a, b in pairwise(seen) if b > a) >= 2 and seen[-1] == 100, seen
    assert page.get_attribute("#sbp-progress", "aria-valuenow") == "100"
    stages: list[str] = page.evaluate("() => window.__stages")
    making = [s for s in stages if s.startswith("Making shot")]
    assert making and making == sorted(making), stages
    assert stages[-1] == "Done — 3 shots joined into one video"
    assert page.is_hidden("#sbp-cancel")

    # what was asked: the shots in order, the image on the first, the others from frames
    assert [s["prompt"] for s in sb["shots"]] == [first, second, third]
    assert [s["duration_seconds"] for s in sb["shots"]] == [1, 2, 1]
    assert [s["resolution"] for s in sb["shots"]] == ["360p"] * 3
    assert [s["image"] for s in sb["shots"]] == [True, False, False]
    with gateway.api() as http:
        jobs = [http.get(f"/v1/videos/{s['video_id']}").json() for s in sb["shots"]]
    assert [j["params"]["image"] for j in jobs] == [True, True, True]

    # the player: the joined video, as long as the shots together, with its poster
    result = sb["result"]
    page.wait_for_function(VIDEO_READY)
    video = page.locator("#sbp-video")
    assert _path(video.get_attribute("src")) == _path(result["url"])
    assert _path(video.get_attribute("poster")) == _path(result["thumbnail_url"])
    assert video.evaluate("(v) => v.duration") == pytest.approx(4.0, abs=0.1)
    assert video.evaluate("(v) => [v.videoWidth, v.videoHeight]") == [
        result["width"],
        result["height"],
    ]
    assert page.inner_text("#sbp-length") == f"{result['duration_seconds']:g} s" == "4 s"
    assert page.inner_text("#sbp-size").startswith(f"{result['width']}\u00d7{result['height']}")
    assert (
        page.inner_text("#sbp-cost").splitlines()
        == [
            _credits(sb["cost"]["credits"]),
            f"${sb['cost']['money']['amount']}",
        ]
        == [cost, money]
    )
    download = page.locator("#sbp-download")
    assert download.inner_text() == "Download MP4"
    assert download.get_attribute("download") == f"{sb_id}.mp4"
    href = download.get_attribute("href") or ""
    assert _path(href) == _path(result["url"])
    got = httpx.get(href, timeout=10)  # a signed URL needs no key
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"

    # where the joins are: a list, and one part of the timeline per shot; both seek
    assert result["joins_at"] == [1.0, 3.0]
    joins = page.locator("#sbp-joins .sbp-join")
    assert joins.all_inner_texts() == [f"{at:g} s" for at in result["joins_at"]]
    joins.nth(1).click()
    page.wait_for_function(
        "() => Math.abs(document.getElementById('sbp-video').currentTime - 3) < 0.3"
    )
    parts = page.locator("#sbp-timeline .sbp-part")
    assert parts.all_inner_texts() == ["1", "2", "3"]
    widths = [_width(parts.nth(i)) for i in range(3)]
    assert widths[1] == pytest.approx(2 * widths[0], rel=0.1)  # 2 s against 1 s

    # one row per shot: completed, with a link to its video's page
    for shot in sb["shots"]:
        row = _row(page, shot["index"])
        assert row.get_attribute("data-status") == "completed"
        assert row.locator(".badge").inner_text().lower() == "completed"
        assert row.locator(".sbp-shot-prompt").inner_text() == shot["prompt"]
        link = row.locator(".sbp-shot-link")
        assert link.get_attribute("href") == f"#/videos/{shot['video_id']}"
        assert row.locator(".sbp-retry").is_hidden()
    screenshot(page, "storyboard-done")

    # the page is an address: a reload shows the same storyboard and its video
    page.reload()
    page.wait_for_function(BADGE_IS, arg="completed")
    page.wait_for_function(VIDEO_READY)
    assert page.evaluate("() => document.getElementById('sbp-video').duration") == pytest.approx(
        4.0, abs=0.1
    )
    _row(page, 2).locator(".sbp-shot-link").click()
    page.wait_for_function(f"() => location.hash === '#/videos/{sb['shots'][1]['video_id']}'")
    page.wait_for_selector("#vp-body:not([hidden])")
    assert page.inner_text("#vp-id") == sb["shots"][1]["video_id"]

    # the tab lists it first among the recent storyboards, linking to its page
    page.click("#nav-storyboard")
    newest = page.locator("#sb-recent .sb-recent-link").first
    newest.wait_for()
    assert newest.get_attribute("data-storyboard") == sb_id
    assert newest.get_attribute("href") == f"#/storyboards/{sb_id}"
    assert newest.locator(".badge").inner_text().lower() == "completed"
    assert newest.locator(".sb-recent-prompt").inner_text() == first
    assert newest.locator(".sb-recent-facts").inner_text().startswith(f"3 shots · 4 s · {cost}")
    newest.click()
    page.wait_for_function(BADGE_IS, arg="completed")
    assert page.inner_text("#sbp-id") == sb_id


def test_a_shot_the_page_or_the_gateway_refuses_is_shown_on_that_shot(
    page: Page, gateway: Server, models: dict[str, dict[str, Any]]
) -> None:
    def longer_local(route: Route) -> None:
        # A catalog that offers local a 30 s shot the gateway itself refuses, so the
        # gateway's 400 (not the page's own check) has to be shown on the shot.
        body = route.fetch().json()
        for m in body["data"]:
            if m["id"] == "local":
                m["allowedParams"]["duration_seconds"].append(30)
                m["max_duration_seconds"] = 30
        route.fulfill(json=body)

    page.route("**/v1/models*", longer_local)
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/storyboards" in r.url else None,
    )
    _open_editor(page, gateway)
    _set_shot(page, 1, "A kite rises over a beach", seconds=1)
    _add_shot(page)
    _add_shot(page)
    _set_shot(page, 3, "The kite string snaps", seconds=2)

    # shot 2 has no prompt: the page says so on shot 2, and asks the gateway nothing
    page.click("#sb-submit")
    error = _card(page, 2).locator(".shot-error")
    error.wait_for()
    assert error.inner_text() == "Shot 2 has no prompt: describe what happens in it."
    assert _card(page, 2).get_attribute("class") == "shot-card invalid"
    assert _card(page, 2).locator(".shot-prompt").get_attribute("aria-invalid") == "true"
    assert page.evaluate("() => document.activeElement.dataset.role") == "prompt"
    for n in (1, 3):
        assert _card(page, n).get_attribute("class") == "shot-card"
        assert _card(page, n).locator(".shot-error").is_hidden()
    assert "Shot 2 has no prompt" in page.inner_text("#sb-messages")
    assert posts == []
    # typing clears it
    _card(page, 2).locator(".shot-prompt").fill("The kite loops twice")
    assert _card(page, 2).get_attribute("class") == "shot-card"
    assert error.is_hidden()

    # a duration the gateway refuses: its 400 lands on shot 2's duration
    _card(page, 2).locator(".shot-duration").select_option("30")
    page.click("#sb-submit")
    error.wait_for()
    assert len(posts) == 1
    body = {
        "shots": [
            {"model": "local", "prompt": p, "duration_seconds": d, "resolution": "360p"}
            for p, d in (("A kite rises", 1), ("The kite loops", 30), ("It snaps", 2))
        ],
    }
    with gateway.api() as http:
        refused = http.post("/v1/storyboards", json=body)
    assert refused.status_code == 400
    api_error = refused.json()["error"]
    assert api_error["param"] == "shots[1].duration_seconds"
    assert error.inner_text() == api_error["message"]
    assert api_error["message"].startswith("Shot 2: ")
    assert _card(page, 2).locator(".shot-duration").get_attribute("aria-invalid") == "true"
    assert _card(page, 2).locator(".shot-prompt").get_attribute("aria-invalid") is None
    for n in (1, 3):
        assert _card(page, n).get_attribute("class") == "shot-card"
    alert = page.locator('#sb-messages .alert[data-kind="error"]')
    assert alert.locator(".alert-title").inner_text() == (
        "The request was not accepted (shots[1].duration_seconds)"
    )
    allowed = alert.locator(".allowed code").all_inner_texts()
    assert allowed == [str(d) for d in api_error["allowed"]] and "20" in allowed
    assert page.evaluate("() => location.hash") == "#/storyboard"  # nothing was made
    # a duration the model allows clears it
    _card(page, 2).locator(".shot-duration").select_option("2")
    assert error.is_hidden()
    assert _card(page, 2).locator(".shot-duration").get_attribute("aria-invalid") is None

    # an account that cannot cover the shots: the 402's numbers, for all three shots
    key = account_without_credits(gateway)
    page.fill("#api-key", key)
    page.click("#key-form button")
    page.wait_for_function(
        "() => document.getElementById('balance-chip-text').textContent.startsWith('0 ')"
    )
    _card(page, 1).wait_for()
    page.click("#sb-submit")
    box = page.locator('#sb-messages .alert[data-kind="error"]')
    box.wait_for()
    assert "Not enough credits" in box.inner_text()
    with gateway.api(key) as http:
        body = {
            "shots": [
                {"model": "local", "prompt": "x", "duration_seconds": d, "resolution": "360p"}
                for d in (1, 2, 2)
            ]
        }
        poor = http.post("/v1/storyboards", json=body)
    assert poor.status_code == 402
    need = poor.json()["error"]
    facts = dict(
        zip(
            box.locator("dt").all_text_contents(),
            box.locator("dd").all_text_contents(),
            strict=True,
        )
    )
    assert facts["Available"] == f"{_trim(need['available'])} credits"
    assert (
        facts["Needed for these 3 shots"] == f"{_trim(need['hold_needed'])} credits" == "5 credits"
    )
    assert facts["Shortfall"] == f"{_trim(need['shortfall'])} credits"
    assert page.locator(".shot-card.invalid").count() == 0
    assert models["local"]["price"]["millicredits_per_second"] == 1000  # 5 s, 5 credits


def test_a_failed_shot_is_retried_with_a_fixed_prompt_and_the_storyboard_completes(
    page: Page, gateway: Server
) -> None:
    _open_editor(page, gateway)
    _set_shot(page, 1, "A paper boat on a pond", seconds=1)
    _add_shot(page)
    fixed = "The paper boat drifts into the reeds"
    _set_shot(page, 2, f"{fixed} [fault:fail@grok]", model="grok-video", resolution="480p")
    assert not page.is_checked("#sb-continue")  # side by side
    page.click("#sb-submit")
    sb_id = _submitted_id(page)

    # the storyboard fails on shot 2; shot 1 is still delivered
    page.wait_for_function(BADGE_IS, arg="failed", timeout=60_000)
    page.wait_for_function(f"() => ({SHOT_STATUS})(1) === 'completed'", timeout=30_000)
    failed = _storyboard(gateway, sb_id)
    assert failed["status"] == "failed" and failed["error"]["shot"] == 2
    bad_video = failed["shots"][1]["video_id"]
    messages = page.inner_text("#sbp-messages")
    assert "Shot 2 failed" in messages and failed["error"]["message"] in messages
    assert page.inner_text("#sbp-stage") == "Failed at shot 2"
    assert "failed-shot" in (_row(page, 2).get_attribute("class") or "")
    assert "failed-shot" not in (_row(page, 1).get_attribute("class") or "")
    assert _row(page, 2).get_attribute("data-status") == "failed"
    assert _row(page, 1).locator(".sbp-retry").is_hidden()
    assert page.is_hidden("#sbp-cancel") and page.is_hidden("#sbp-result")
    assert page.inner_text("#sbp-noplayer-text").startswith("No video yet: shot 2 failed.")

    # retry it with the fault taken out of the prompt (the model stays)
    _row(page, 2).locator(".sbp-retry").click()
    form = _row(page, 2).locator(".sbp-retry-form")
    prompt = form.locator(".sbp-retry-prompt")
    assert prompt.input_value() == f"{fixed} [fault:fail@grok]"
    model = form.locator(".shot-model")
    assert model.input_value() == "grok-video" and "local" in _options(model)
    assert form.locator(".shot-resolution").input_value() == "480p"
    prompt.fill(fixed)
    retried: list[Any] = []
    page.on(
        "request",
        lambda r: retried.append(r.post_data_json) if r.url.endswith("/shots/2/retry") else None,
    )
    form.locator(".sbp-retry-send").click()
    page.wait_for_function(BADGE_IS, arg="completed", timeout=60_000)
    assert retried == [{"prompt": fixed}]  # only what changed
    assert page.is_hidden("#sbp-noplayer")

    done = _storyboard(gateway, sb_id)
    assert done["status"] == "completed"
    assert done["shots"][1]["prompt"] == fixed and done["shots"][1]["tried"] == [bad_video]
    assert done["shots"][0]["video_id"] == failed["shots"][0]["video_id"]  # kept, not redone
    assert page.is_hidden("#sbp-messages .alert")
    row = _row(page, 2)
    assert row.get_attribute("data-status") == "completed"
    assert "failed-shot" not in (row.get_attribute("class") or "")
    assert row.locator(".sbp-shot-prompt").inner_text() == fixed
    assert row.locator(".sbp-shot-link").get_attribute("href") == (
        f"#/videos/{done['shots'][1]['video_id']}"
    )
    assert row.locator(".sbp-shot-tried a").get_attribute("href") == f"#/videos/{bad_video}"
    page.wait_for_function(VIDEO_READY)
    assert page.evaluate("() => document.getElementById('sbp-video').duration") == pytest.approx(
        2.0, abs=0.1
    )
    assert page.inner_text("#sbp-cost").splitlines()[0] == _credits(done["cost"]["credits"])


def test_a_running_storyboard_is_canceled_from_its_page(page: Page, gateway: Server) -> None:
    with gateway.api() as http:
        made = http.post(
            "/v1/storyboards",
            json={
                "shots": [
                    {
                        "model": "local",
                        "prompt": "one",
                        "duration_seconds": 1,
                        "resolution": "360p",
                    },
                    {
                        "model": "grok-video",
                        "prompt": "slow <b>two</b> [fault:never@grok]",
                        "duration_seconds": 1,
                        "resolution": "480p",
                    },
                ]
            },
        )
    assert made.status_code == 202, made.text
    sb_id = made.json()["id"]
    page.goto(f"{gateway.base}/?key={gateway.key}#/storyboards/{sb_id}")
    page.wait_for_selector("#sbp-body:not([hidden])")
    assert page.get_attribute("#nav-storyboard", "aria-current") == "page"
    # a prompt is text, never markup
    assert (
        _row(page, 2).locator(".sbp-shot-prompt").inner_text()
        == "slow <b>two</b> [fault:never@grok]"
    )
    assert _row(page, 2).locator(".sbp-shot-prompt b").count() == 0
    cancel = page.locator("#sbp-cancel")
    cancel.wait_for()
    cancel.click()
    page.wait_for_function(BADGE_IS, arg="canceled", timeout=30_000)
    assert "Storyboard canceled" in page.inner_text("#sbp-messages")
    assert page.inner_text("#sbp-noplayer-text") == (
        "This storyboard was canceled, so there is no video."
    )
    assert cancel.is_hidden()
    deadline = time.monotonic() + 30
    while _storyboard(gateway, sb_id)["shots"][1]["status"] != "canceled":
        assert time.monotonic() < deadline, "shot 2 was never canceled"
        time.sleep(0.2)

    page.goto(f"{gateway.base}/#/storyboards/storyboard_not_one_of_ours")
    page.wait_for_selector("#sbp-messages .alert")
    assert "No such storyboard" in page.inner_text("#sbp-messages")
    assert page.is_hidden("#sbp-body")


def test_a_shot_on_a_synced_model_sends_its_audio_choice_and_provider_params(
    page: Page, gateway: Server, models: dict[str, dict[str, Any]]
) -> None:
    # The gateway here lists no synced model: the catalog gets one, a copy of local with
    # an audio switch and an own input. Only the request the page builds is checked.
    assert not any(m.get("source") == "synced" for m in models.values())
    synced_id = "fal:acme/clip-pro"
    synced = {
        **models["local"],
        "id": synced_id,
        "source": "synced",
        "usable": True,
        "priced": True,
        "capabilities": [*models["local"].get("capabilities", []), "audio"],
        "synced": {
            "provider": "fal",
            "upstream_id": "acme/clip-pro",
            "provider_params": {"mode": {"type": ["string"], "enum": ["standard", "pro"]}},
            "mapping": {"status": "mapped"},
            "status": "active",
            "priced": True,
        },
    }

    def with_synced(route: Route) -> None:
        body = route.fetch().json()
        if isinstance(body.get("data"), list) and not body.get("has_more"):
            body["data"].append(synced)
        route.fulfill(json=body)

    page.route("**/v1/models*", with_synced)
    posts: list[str] = []
    page.on(
        "request",
        lambda r: posts.append(r.url) if r.method == "POST" and "/storyboards" in r.url else None,
    )
    _open_editor(page, gateway)
    _set_shot(page, 1, "A lighthouse beam sweeps the fog", model=synced_id)
    card = _card(page, 1)
    audio = card.locator(".shot-audio")
    params = card.locator(".shot-provider-params")
    assert audio.input_value() == ""  # the model's default
    assert "mode" in (params.get_attribute("placeholder") or "")
    _add_shot(page)
    _set_shot(page, 2, "Waves break on the rocks", model="local")
    # a hand-written model's shot has neither field
    assert _card(page, 2).locator(".shot-synced").count() == 0

    # not a JSON object: an error on the shot, and nothing is sent
    audio.select_option("on")
    params.fill('{"mode": ')
    problem = card.locator(".shot-pp-error")
    assert problem.is_visible() and "JSON" in problem.inner_text()
    assert params.get_attribute("aria-invalid") == "true"
    page.click("#sb-submit")
    card.locator(".shot-error").wait_for()
    assert "JSON" in card.locator(".shot-error").inner_text()
    assert posts == []

    params.fill('{"mode": "pro"}')
    assert problem.is_hidden()
    assert params.get_attribute("aria-invalid") is None
    with page.expect_request(
        lambda r: r.method == "POST" and urlsplit(r.url).path == "/v1/storyboards"
    ) as request:
        page.click("#sb-submit")
    sent = request.value.post_data_json
    assert isinstance(sent, dict)
    shots = sent["shots"]
    assert shots[0]["model"] == synced_id
    assert shots[0]["audio"] is True
    assert shots[0]["provider_params"] == {"mode": "pro"}
    assert shots[1]["model"] == "local"
    assert "audio" not in shots[1] and "provider_params" not in shots[1]

    # "off" is sent as false; the model's default sends no audio at all
    audio.select_option("off")
    with page.expect_request(
        lambda r: r.method == "POST" and urlsplit(r.url).path == "/v1/storyboards"
    ) as request:
        page.click("#sb-submit")
    sent = request.value.post_data_json
    assert isinstance(sent, dict)
    assert sent["shots"][0]["audio"] is False
