"""The studio's gallery and a video's page in Chromium against a real ``reelgate serve``.

The gateway runs the ``local`` renderer and, beside it, every provider's emulator
(``--emulators``, one-second jobs), so the account holds videos of more than one model:
done on ``local``, refused on ``grok-video``, delivered by ``local`` after ``grok-video``
ran out of quota, and canceled. Every figure the page shows is checked against the API's
answer. The screenshots land in docs/screenshots/ under ``make screenshots``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.conftest import Server, screenshot, serving

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.slow

FINAL = ("completed", "failed", "canceled")
# A prompt that would run script if the page ever put it in as markup.
MARKUP_PROMPT = 'A neon sign reading <img src=x onerror="window.__pwned=1"> & "OPEN" at night'
CARD_IDS = (
    "() => Array.from(document.querySelectorAll('#gallery-grid .gcard'), (c) => c.dataset.job)"
)
POSTERS_LOADED = """() => Array.from(document.querySelectorAll('#gallery-grid img.gcard-poster'))
  .every((img) => img.complete && img.naturalWidth > 0)"""
# Load a URL as an image in the page (as a CSS background would): its natural width, 0 on error.
IMAGE_WIDTH = """(url) => new Promise((resolve) => {
  const img = new Image();
  img.onload = () => resolve(img.naturalWidth);
  img.onerror = () => resolve(0);
  img.src = url;
})"""


@dataclass(frozen=True)
class Made:
    """The account's jobs, as the API gives them once final, oldest first."""

    fox: dict[str, Any]  # local, 4 s 360p 16:9: four sprite tiles in one row
    seeded: dict[str, Any]  # local, 3 s 480p, a seed and a negative prompt
    refused: dict[str, Any]  # grok-video refused it
    fell_back: dict[str, Any]  # grok-video out of quota, delivered by local
    canceled: dict[str, Any]  # local, canceled at once
    markup: dict[str, Any]  # local, a prompt full of markup

    def oldest_first(self) -> list[dict[str, Any]]:
        return [self.fox, self.seeded, self.refused, self.fell_back, self.canceled, self.markup]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``reelgate serve --emulators`` on a free port with its own data dir: conftest's
    ``server`` plus the providers' emulators, so jobs can be on more than one model."""
    root = tmp_path_factory.mktemp("gallery")
    with serving(root, "--emulators", "--emulator-job-seconds", "1") as served:
        yield served


def _final(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/videos/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def made(gateway: Server) -> Made:
    def submit(http: httpx.Client, **body: Any) -> str:
        answer = http.post("/v1/videos", json={"resolution": "360p", **body})
        assert answer.status_code == 202, answer.text
        job_id: str = answer.json()["id"]
        return job_id

    with gateway.api() as http:
        fox = submit(
            http,
            model="local",
            prompt="A red fox trots through fresh snow, camera tracking left",
            duration_seconds=4,
            aspect_ratio="16:9",
        )
        seeded = submit(
            http,
            model="local",
            prompt="Slow dolly-in on a vintage typewriter, warm lamp light",
            duration_seconds=3,
            resolution="480p",
            aspect_ratio="16:9",
            seed=42,
            negative_prompt="blur, captions",
        )
        refused = submit(
            http,
            model="grok-video",
            prompt="A crowd waving [fault:refuse]",
            duration_seconds=2,
            resolution="480p",
        )
        # A quota answer makes the gateway rest grok-video for a while: any grok job
        # still waiting would then fail with "quota" too, so the refusal comes first.
        _final(http, refused)
        fell_back = submit(
            http,
            model="grok-video",
            prompt="A paper boat on a pond [fault:quota]",
            duration_seconds=2,
            resolution="480p",
            fallback=["local"],
        )
        canceled = submit(
            http,
            model="local",
            prompt="Never mind this one",
            duration_seconds=20,
            resolution="1080p",
        )
        assert http.post(f"/v1/videos/{canceled}/cancel").status_code == 200
        markup = submit(http, model="local", prompt=MARKUP_PROMPT, duration_seconds=1)
        ids = [fox, seeded, refused, fell_back, canceled, markup]
        jobs = [_final(http, job_id) for job_id in ids]
    result = Made(*jobs)
    assert [j["status"] for j in result.oldest_first()] == [
        "completed", "completed", "failed", "completed", "canceled", "completed",
    ]  # fmt: skip
    assert result.fell_back["delivered_by"] == "local"
    assert result.refused["error"]["code"] == "refused"
    for job in (result.fox, result.seeded, result.fell_back, result.markup):
        assert job["result"]["thumbnail_url"] and job["result"]["spritesheet_url"]
    return result


def _trim(credits: str) -> str:
    """The page shows credits without trailing zeros: "4.000" -> "4"."""
    return credits.rstrip("0").rstrip(".") if "." in credits else credits


def _credits(credits: str) -> str:
    """ "4.000" -> "4 credits", "1.000" -> "1 credit" """
    trimmed = _trim(credits)
    return f"{trimmed} {'credit' if trimmed == '1' else 'credits'}"


def _path(url: str | None) -> str:
    """A signed URL without its query (each read signs afresh)."""
    assert url
    return urlsplit(url).path


def _listed(gateway: Server, **query: Any) -> list[str]:
    with gateway.api() as http:
        body = http.get("/v1/videos", params={"limit": 100, **query}).json()
    assert not body["has_more"]
    return [j["id"] for j in body["data"]]


def _card(page: Page, job: dict[str, Any]) -> Locator:
    return page.locator(f'#gallery-grid .gcard[data-job="{job["id"]}"]')


def _open_gallery(page: Page, gateway: Server, query: str = "") -> None:
    page.goto(f"{gateway.base}/?key={gateway.key}#/gallery{query}")
    page.wait_for_selector("#gallery-grid .gcard")


def _wait_cards(page: Page, ids: list[str]) -> None:
    page.wait_for_function(f"() => JSON.stringify(({CARD_IDS})()) === JSON.stringify({ids!r})")


def test_the_gallery_shows_every_video_newest_first_with_its_poster(
    page: Page, gateway: Server, made: Made
) -> None:
    _open_gallery(page, gateway)
    newest_first = [j["id"] for j in reversed(made.oldest_first())]
    assert page.evaluate(CARD_IDS) == newest_first == _listed(gateway)
    assert page.get_attribute("#nav-gallery", "aria-current") == "page"
    assert page.is_hidden("#gallery-more")
    assert page.inner_text("#gallery-count") == "6 videos"

    # every poster is a real image; a job without one shows its status instead
    page.wait_for_function(POSTERS_LOADED)
    for job in made.oldest_first():
        card = _card(page, job)
        poster = card.locator("img.gcard-poster")
        if job["status"] == "completed":
            assert _path(poster.get_attribute("src")) == _path(job["result"]["thumbnail_url"])
            assert poster.evaluate("(img) => img.naturalWidth") > 0
        else:
            assert poster.count() == 0
        assert card.locator(".badge").inner_text().lower() == job["status"]
        assert card.locator(".gcard-prompt").text_content() == job["prompt"]
        cost = job["cost"]
        assert card.locator(".gcard-cost").inner_text() == (
            f"{_credits(cost['credits'])} · ${cost['money']['amount']}" if cost else "—"
        )
        seconds = (
            job["result"]["duration_seconds"]
            if job["result"]
            else job["params"]["duration_seconds"]
        )
        assert card.locator(".gcard-dur").inner_text() == f"{seconds:g} s"
    assert _card(page, made.refused).locator(".gcard-placeholder").inner_text() == (
        "Failed · refused"
    )
    assert _card(page, made.canceled).locator(".gcard-placeholder").inner_text() == "Canceled"
    # the requested model, and the one that delivered it after a fallback
    assert _card(page, made.fell_back).locator(".gcard-model").inner_text() == (
        "grok-video → local"
    )
    assert _card(page, made.fox).locator(".gcard-model").inner_text() == "local"

    # a prompt is text, never markup
    markup = _card(page, made.markup).locator(".gcard-prompt")
    assert markup.evaluate("(p) => p.children.length") == 0
    assert page.evaluate("() => window.__pwned") is None
    screenshot(page, "gallery")


def test_the_filters_reload_the_grid_and_stay_in_the_address(
    page: Page, gateway: Server, made: Made
) -> None:
    _open_gallery(page, gateway)
    models: list[str] = page.eval_on_selector_all(
        "#gallery-model option", "(opts) => opts.map((o) => o.value)"
    )
    with gateway.api() as http:
        catalog = [m["id"] for m in http.get("/v1/models?modality=video").json()["data"]]
    assert models == ["", *catalog]

    page.select_option("#gallery-status", "completed")
    page.wait_for_function("() => location.hash === '#/gallery?status=completed'")
    completed = _listed(gateway, status="completed")
    assert completed == [made.markup["id"], made.fell_back["id"], made.seeded["id"], made.fox["id"]]
    _wait_cards(page, completed)

    # a model matches the requested model or the delivering one
    page.select_option("#gallery-model", "grok-video")
    page.wait_for_function("() => location.hash === '#/gallery?model=grok-video&status=completed'")
    _wait_cards(page, [made.fell_back["id"]])
    assert _listed(gateway, status="completed", model="grok-video") == [made.fell_back["id"]]

    page.select_option("#gallery-status", "")
    page.wait_for_function("() => location.hash === '#/gallery?model=grok-video'")
    _wait_cards(page, [made.fell_back["id"], made.refused["id"]])

    page.select_option("#gallery-model", "local")
    local = [made.markup, made.canceled, made.fell_back, made.seeded, made.fox]
    _wait_cards(page, [j["id"] for j in local])
    assert _listed(gateway, model="local") == [j["id"] for j in local]

    page.select_option("#gallery-status", "failed")
    page.wait_for_selector("#gallery-empty:not([hidden])")
    assert page.evaluate(CARD_IDS) == []
    assert page.inner_text("#gallery-empty-title") == "No videos match these filters"

    # a reload keeps the filters
    page.select_option("#gallery-status", "canceled")
    _wait_cards(page, [made.canceled["id"]])
    page.reload()
    _wait_cards(page, [made.canceled["id"]])
    assert page.input_value("#gallery-model") == "local"
    assert page.input_value("#gallery-status") == "canceled"
    assert page.is_visible("#view-gallery")


def test_load_more_pages_through_the_videos_with_the_page_size_from_the_address(
    page: Page, gateway: Server, made: Made
) -> None:
    everything = _listed(gateway)
    _open_gallery(page, gateway, "?limit=2")
    _wait_cards(page, everything[:2])
    assert page.inner_text("#gallery-count") == "2 videos, more to load"
    page.click("#gallery-more")
    _wait_cards(page, everything[:4])
    page.click("#gallery-more")
    _wait_cards(page, everything)
    assert page.is_hidden("#gallery-more")
    assert page.inner_text("#gallery-count") == "6 videos"

    # paging follows the filters too
    page.goto(f"{gateway.base}/#/gallery?limit=2&status=completed")
    completed = _listed(gateway, status="completed")
    _wait_cards(page, completed[:2])
    page.click("#gallery-more")
    _wait_cards(page, completed)
    assert page.is_hidden("#gallery-more")


def _pixels(css: str) -> tuple[float, float]:
    """ "-294.158px 0px" -> (-294.158, 0.0)"""
    x, y = (float(v.removesuffix("px")) for v in css.split())
    return x, y


def _background_offset(layer: Locator) -> tuple[float, float]:
    return _pixels(layer.evaluate("(e) => e.style.backgroundPosition"))


def test_hovering_a_poster_scrubs_through_the_sprite_sheet(
    page: Page, gateway: Server, made: Made
) -> None:
    job = made.fox
    layout = job["result"]["spritesheet"]
    assert (layout["columns"], layout["rows"], layout["tiles"]) == (4, 1, 4)
    _open_gallery(page, gateway)
    card = _card(page, job)
    media = card.locator(".gcard-media")
    layer = card.locator(".gcard-scrub")
    box = media.bounding_box()
    assert box is not None
    assert layer.is_hidden()

    # the sheet loads as an image, as wide as its tiles
    sprite = job["result"]["spritesheet_url"]
    assert page.evaluate(IMAGE_WIDTH, sprite) == layout["columns"] * layout["tile_width"]

    middle = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.1, middle)
    layer.wait_for(state="visible")
    tile_w = layer.evaluate("(e) => parseFloat(e.style.width)")
    tile_h = layer.evaluate("(e) => parseFloat(e.style.height)")
    # the tile fills the 16:9 image area, and the sheet is scaled so one tile shows
    assert tile_w == pytest.approx(box["width"], abs=1)
    assert tile_w / tile_h == pytest.approx(layout["tile_width"] / layout["tile_height"], rel=0.02)
    size = _pixels(layer.evaluate("(e) => e.style.backgroundSize"))
    assert size == pytest.approx((layout["columns"] * tile_w, layout["rows"] * tile_h), abs=0.01)
    image = re.fullmatch(r'url\("(.+)"\)', layer.evaluate("(e) => e.style.backgroundImage"))
    assert image is not None and _path(image[1]) == _path(sprite)
    assert _background_offset(layer) == (0, 0)
    assert media.get_attribute("data-tile") == "0"
    assert card.locator(".gcard-bar").is_visible()
    assert card.locator(".gcard-dur").inner_text() == "0.5 / 4 s"

    page.mouse.move(box["x"] + box["width"] * 0.9, middle)
    page.wait_for_function("(m) => m.dataset.tile === '3'", arg=media.element_handle())
    x, y = _background_offset(layer)
    assert x == pytest.approx(-3 * tile_w, abs=0.01) and y == 0
    assert card.locator(".gcard-dur").inner_text() == "3.5 / 4 s"
    at = card.locator(".gcard-bar").evaluate("(b) => b.style.getPropertyValue('--at')")
    assert at == "87.5%"
    screenshot(page, "gallery-scrub")

    page.mouse.move(box["x"] + box["width"] * 0.4, middle)
    page.wait_for_function("(m) => m.dataset.tile === '1'", arg=media.element_handle())
    assert _background_offset(layer)[0] == pytest.approx(-tile_w, abs=0.01)

    # leaving restores the poster
    page.mouse.move(5, 5)
    layer.wait_for(state="hidden")
    assert card.locator(".gcard-bar").is_hidden()
    assert card.locator(".gcard-dur").inner_text() == "4 s"
    assert card.locator("img.gcard-poster").is_visible()

    # from the keyboard: focus shows the poster, the arrows step through the tiles,
    # Escape goes back to the poster, Enter opens the video
    card.focus()
    assert layer.is_hidden()
    page.keyboard.press("ArrowRight")
    assert media.get_attribute("data-tile") == "0"
    page.keyboard.press("ArrowRight")
    assert media.get_attribute("data-tile") == "1"
    assert _background_offset(layer)[0] == pytest.approx(-tile_w, abs=0.01)
    page.keyboard.press("Escape")
    assert layer.is_hidden()
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => location.hash === '#/videos/{job['id']}'")
    page.wait_for_selector("#vp-body:not([hidden])")


def _facts(box: Locator) -> dict[str, str]:
    return dict(
        zip(
            box.locator("dt").all_text_contents(),  # as written, not as styled (uppercase)
            box.locator("dd").all_inner_texts(),
            strict=True,
        )
    )


VIDEO_READY = "() => document.getElementById('vp-video').readyState >= 1"

CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
MAGIC = {
    "video": lambda b: b[4:8] == b"ftyp",
    "thumbnail": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "spritesheet": lambda b: b[:3] == b"\xff\xd8\xff",
}
FIELDS = {"video": "url", "thumbnail": "thumbnail_url", "spritesheet": "spritesheet_url"}
ENDINGS = {"video": ".mp4", "thumbnail": ".thumbnail.webp", "spritesheet": ".spritesheet.jpg"}


def test_a_card_opens_the_video_page_with_player_parameters_attempts_cost_and_downloads(
    page: Page, gateway: Server, made: Made
) -> None:
    job = made.seeded
    _open_gallery(page, gateway, "?model=local")
    _card(page, job).click()
    page.wait_for_function(f"() => location.hash === '#/videos/{job['id']}?model=local'")
    page.wait_for_selector("#vp-body:not([hidden])")
    assert page.inner_text("#vp-id") == job["id"]
    assert page.inner_text("#vp-badge").lower() == "completed"
    assert page.get_attribute("#nav-gallery", "aria-current") == "page"

    # the player: the MP4, with the poster
    result = job["result"]
    page.wait_for_function(VIDEO_READY)
    video = page.locator("#vp-video")
    assert _path(video.get_attribute("src")) == _path(result["url"])
    assert _path(video.get_attribute("poster")) == _path(result["thumbnail_url"])
    assert video.evaluate("(v) => v.duration") == pytest.approx(3.0, abs=0.1)
    assert video.evaluate("(v) => [v.videoWidth, v.videoHeight]") == [
        result["width"],
        result["height"],
    ]

    params = _facts(page.locator("#vp-params"))
    assert params == {
        "Prompt": job["prompt"],
        "Model": "local",
        "Delivered by": "local",
        "Duration": "3 s",
        "Resolution": "480p",
        "Aspect ratio": "16:9",
        "Seed": "42",
        "Negative prompt": "blur, captions",
    }
    facts = _facts(page.locator(".vp-facts"))
    assert facts["Cost"] == f"{_credits(job['cost']['credits'])}\n${job['cost']['money']['amount']}"
    assert facts["Duration"] == "3 s"
    assert facts["Size"].startswith(f"{result['width']}\u00d7{result['height']}")  # "W times H"

    attempts = page.locator("#vp-attempts li")
    assert attempts.count() == len(job["attempts"]) == 1
    assert attempts.first.get_attribute("data-model") == "local"
    assert attempts.first.get_attribute("data-outcome") == "completed"

    # the downloads: fresh signed links to the right files, each served as what it is
    for variant, field in FIELDS.items():
        link = page.locator(f'#vp-downloads a[data-variant="{variant}"]')
        assert link.is_visible()
        href = link.get_attribute("href")
        assert _path(href) == _path(result[field])
        assert link.get_attribute("download") == f"{job['id']}{ENDINGS[variant]}"
        got = httpx.get(href or "", timeout=10)  # a signed URL needs no key
        assert got.status_code == 200
        assert got.headers["content-type"] == CONTENT_TYPES[variant]
        assert MAGIC[variant](got.content), variant
    assert page.locator("#vp-dl-video").inner_text() == "Download MP4"
    screenshot(page, "job-page")

    # back to the gallery, with its filter
    page.click("#vp-back")
    page.wait_for_function("() => location.hash === '#/gallery?model=local'")
    local = [made.markup, made.canceled, made.fell_back, made.seeded, made.fox]
    _wait_cards(page, [j["id"] for j in local])
    assert page.input_value("#gallery-model") == "local"


def test_the_video_page_shows_a_fallback_a_refusal_and_a_cancel(
    page: Page, gateway: Server, made: Made
) -> None:
    base = f"{gateway.base}/?key={gateway.key}"
    page.goto(f"{base}#/videos/{made.fell_back['id']}")
    page.wait_for_selector("#vp-body:not([hidden])")
    page.wait_for_function(VIDEO_READY)
    assert "Delivered by local, a fallback" in page.inner_text("#vp-messages")
    rows = page.locator("#vp-attempts li")
    assert [
        (rows.nth(i).get_attribute("data-model"), rows.nth(i).get_attribute("data-outcome"))
        for i in range(rows.count())
    ] == [(a["model"], a["outcome"]) for a in made.fell_back["attempts"]]
    assert [a["outcome"] for a in made.fell_back["attempts"]] == ["quota", "completed"]
    assert rows.first.locator(".vp-attempt-error").inner_text() == "quota"
    params = _facts(page.locator("#vp-params"))
    assert (params["Model"], params["Delivered by"], params["Fallbacks"]) == (
        "grok-video",
        "local",
        "local",
    )
    assert params["Seed"] == "random"
    assert "Negative prompt" not in params

    page.goto(f"{base}#/videos/{made.refused['id']}")
    page.wait_for_selector("#vp-body:not([hidden])")
    assert page.is_hidden("#vp-player") and page.is_visible("#vp-noplayer")
    assert "Refused on safety grounds" in page.inner_text("#vp-messages")
    assert page.locator("#vp-attempts li .vp-attempt-error").inner_text() == "refused"
    assert page.inner_text("#vp-cost").startswith("0 credits")
    for variant in FIELDS:
        assert page.is_hidden(f'#vp-downloads a[data-variant="{variant}"]')

    page.goto(f"{base}#/videos/{made.canceled['id']}")
    page.wait_for_function("() => document.getElementById('vp-badge').textContent === 'canceled'")
    assert "Job canceled" in page.inner_text("#vp-messages")
    assert page.inner_text("#vp-noplayer-text") == "There is no video for this job."

    # the markup prompt is text here too
    page.goto(f"{base}#/videos/{made.markup['id']}")
    page.wait_for_selector("#vp-body:not([hidden])")
    prompt = page.locator("#vp-params .vp-prompt")
    assert prompt.text_content() == MARKUP_PROMPT
    assert prompt.evaluate("(p) => p.children.length") == 0
    assert page.evaluate("() => window.__pwned") is None

    page.goto(f"{base}#/videos/video_not_one_of_ours")
    page.wait_for_selector("#vp-messages .alert")
    assert "No such video" in page.inner_text("#vp-messages")
    assert page.is_hidden("#vp-body")
