"""The studio's model picker with a synced catalog, clicked through in Chromium: the
search over every model, synced models' cards (an unpriced one not offered), their derived
controls and provider parameters reaching the provider, and the schema's refusals.

The gateway runs with ``--emulators``; ``reelgate catalog sync`` then reads the fal and
Replicate emulators it started (their recorded schemas) into its database, which the
gateway re-reads on ``GET /v1/models``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import Server, screenshot, serving

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

pytestmark = pytest.mark.slow

KLING_V3 = "replicate:kwaivgi/kling-v3-video"
"""Priced, with an audio switch and a ``mode`` (standard, pro) of its own."""
UNPRICED = "fal:fal-ai/kling-video/v2.6/pro/text-to-video"
CFG_MODEL = "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
"""Its own ``cfg_scale`` is a number from 0 to 1."""
EMULATOR_LINE = re.compile(r"^emulator (\w+)\s+(http://\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Gateway:
    server: Server
    replicate: str
    """The Replicate emulator the gateway runs (its predictions show what it was sent)."""


def _sync(server: Server, urls: dict[str, str]) -> None:
    """``reelgate catalog sync`` on the gateway's data dir, against its emulators."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATA_DIR=str(server.data_dir),
        REELGATE_FAL_PLATFORM_URL=urls["fal"],
        REELGATE_REPLICATE_BASE_URL=urls["replicate"] + "/v1",
        REELGATE_REPLICATE_API_TOKEN="emulator-replicate",
    )
    done = subprocess.run(
        [sys.executable, "-m", "reelgate.cli.main", "catalog", "sync", "--json"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("picker")
    with serving(root, "--emulators", "--emulator-job-seconds", "1") as served:
        urls = dict(EMULATOR_LINE.findall(served.log.read_text()))
        _sync(served, urls)
        yield Gateway(served, urls["replicate"])


def _models(server: Server, **query: Any) -> dict[str, Any]:
    with server.api() as http:
        answer: dict[str, Any] = http.get("/v1/models", params=query).json()
    return answer


def _open(page: Page, server: Server) -> None:
    page.goto(f"{server.base}/?key={server.key}")
    page.wait_for_selector('.model-card[data-model="local"]')


def _card(page: Page, model_id: str) -> Any:
    return page.locator(f'#model-list .model-card[data-model="{model_id}"]')


def _listed(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#model-list .model-card", "(cards) => cards.map((c) => c.dataset.model)"
    )
    return ids


def _search(page: Page, words: str, expect: str) -> None:
    page.fill("#model-search", words)
    page.wait_for_function(
        "(text) => document.getElementById('models-state').textContent === text", arg=expect
    )


def _pick_kling_v3(page: Page) -> None:
    _search(page, "kling v3", "1 match")
    _card(page, KLING_V3).click()
    page.wait_for_function(
        "(id) => document.getElementById('settings-hint').textContent.startsWith(id)",
        arg=KLING_V3,
    )


def _options(page: Page, select: str) -> list[str]:
    texts: list[str] = page.eval_on_selector_all(
        f"{select} option", "(opts) => opts.map((o) => o.textContent)"
    )
    return texts


def test_the_search_finds_synced_models_by_word_and_clearing_it_shows_the_builtin_list(
    page: Page, gateway: Gateway
) -> None:
    server = gateway.server
    builtin = [m["id"] for m in _models(server, source="builtin", limit=500)["data"]]
    kling = _models(server, search="kling", limit=50)
    assert kling["total"] > 5 and any(m["source"] == "synced" for m in kling["data"])
    _open(page, server)
    assert sorted(_listed(page)) == sorted(builtin)
    assert not any(":" in m for m in _listed(page))  # no synced model until a search

    searches: list[str] = []
    page.on("request", lambda r: searches.append(r.url) if "search=" in r.url else None)
    page.type("#model-search", "kling", delay=20)
    page.wait_for_function(
        "(text) => document.getElementById('models-state').textContent === text",
        arg=f"{kling['total']} matches",
    )
    assert len(searches) < len("kling"), f"one search after the typing pauses: {searches}"
    assert sorted(_listed(page)) == sorted(m["id"] for m in kling["data"])
    assert _card(page, KLING_V3).locator(".tag.synced").inner_text() == "synced · replicate"
    screenshot(page, "studio-model-search")

    # the audio chip keeps the models with an audio switch
    audio = _models(server, search="kling", capability="audio", limit=50)
    page.check("#cap-chips input[value=audio]")
    page.wait_for_function(
        "(text) => document.getElementById('models-state').textContent === text",
        arg=f"{audio['total']} {'match' if audio['total'] == 1 else 'matches'}",
    )
    assert sorted(_listed(page)) == sorted(m["id"] for m in audio["data"])
    page.uncheck("#cap-chips input[value=audio]")

    _search(page, "kling nosuchword", "no model matches")
    assert _listed(page) == []
    assert "No model matches" in page.inner_text("#model-list")

    page.fill("#model-search", "")
    page.wait_for_function(
        "() => document.getElementById('models-state').textContent.endsWith('usable here')"
    )
    assert sorted(_listed(page)) == sorted(builtin)


def test_an_unpriced_synced_model_is_listed_but_not_offered(page: Page, gateway: Gateway) -> None:
    server = gateway.server
    with server.api() as http:
        model = http.get(f"/v1/models/{UNPRICED}").json()
    assert model["source"] == "synced" and model["priced"] is False
    _open(page, server)
    _search(page, "kling v2.6 pro text", "1 match")
    card = _card(page, UNPRICED)
    assert card.locator("input").is_disabled()
    assert card.locator(".tag.off").text_content() == "unpriced — not offered"
    assert "no price per second is known for it" in card.locator(".model-reason").inner_text()
    card.click(force=True)
    assert not card.locator("input").is_checked()
    assert not page.inner_text("#settings-hint").startswith(UNPRICED)


def test_a_synced_model_gets_its_derived_controls_and_its_provider_params_reach_upstream(
    page: Page, gateway: Gateway
) -> None:
    server = gateway.server
    with server.api() as http:
        model = http.get(f"/v1/models/{KLING_V3}").json()
    allowed = model["allowedParams"]
    _open(page, server)
    _pick_kling_v3(page)

    # the usual controls, from the derived allowedParams
    assert _options(page, "#resolution") == allowed["resolution"]
    assert _options(page, "#duration") == [f"{d} s" for d in allowed["duration_seconds"]]
    assert _options(page, "#aspect") == allowed["aspect_ratio"]
    assert page.is_visible("#field-image") and page.is_visible("#field-negative")
    assert not page.is_visible("#field-seed")
    assert page.is_visible("#field-audio")  # its capabilities include audio

    # its own inputs: each named, typed, with its values and default
    own = model["synced"]["provider_params"]
    rows = page.locator("#pp-list .pp-row")
    assert page.is_visible("#provider-params")
    assert rows.evaluate_all("(rs) => rs.map((r) => r.dataset.name)") == list(own)
    mode = page.locator("#pp-list .pp-row[data-name=mode]")
    assert mode.locator(".pp-type").inner_text() == "string · standard | pro · default pro"
    assert _options(page, "#pp-mode") == ["default (pro)", "standard", "pro"]
    screenshot(page, "studio-synced-model")

    # the estimate follows the inputs that move the price: pro without audio, the
    # default, then standard with audio (its price_by_inputs)
    page.select_option("#duration", "5")
    combos = {
        tuple(sorted(c["when"].items())): c["millicredits_per_second"]
        for c in model["synced"]["price_by_inputs"]
    }
    base = combos[(("audio", False), ("mode", "pro"))]
    assert f"{base * 5 / 1000:g}" in page.inner_text("#estimate")
    page.select_option("#pp-mode", label="standard")
    page.check("#audio")
    moved = combos[(("audio", True), ("mode", "standard"))]
    page.wait_for_function(
        "(text) => document.getElementById('estimate').innerText.includes(text)",
        arg=f"{moved * 5 / 1000:g}",
    )
    page.fill("#prompt", "a kite climbing over a windy beach, camera tilting up")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/videos")) as sent:
        page.click("#submit")
    request: Request = sent.value
    body = request.post_data_json
    assert body["model"] == KLING_V3
    assert body["provider_params"] == {"mode": "standard"}  # only what was changed
    assert body["audio"] is True

    page.wait_for_selector("#job-view", state="visible")
    job_id = page.inner_text("#job-id")
    page.wait_for_function(
        "() => document.getElementById('job-badge').classList.contains('completed')",
        timeout=45_000,
    )
    with server.api() as http:
        job = http.get(f"/v1/videos/{job_id}").json()
    assert job["status"] == "completed" and job["delivered_by"] == KLING_V3
    upstream = job["attempts"][-1]["upstream_id"]
    got = httpx.get(
        f"{gateway.replicate}/v1/predictions/{upstream}",
        headers={"Authorization": "Bearer emulator-replicate"},
        timeout=10,
    ).json()
    assert got["input"]["mode"] == "standard" and got["input"]["generate_audio"] is True
    assert got["input"]["duration"] == 5

    # cleared, the search's model stays picked, first in the builtin list; a reload keeps it
    page.fill("#model-search", "")
    page.wait_for_function(
        "() => document.getElementById('models-state').textContent.endsWith('usable here')"
    )
    assert _listed(page)[0] == KLING_V3
    assert _card(page, KLING_V3).locator("input").is_checked()
    page.goto(f"{server.base}/")
    _card(page, KLING_V3).wait_for()
    assert _card(page, KLING_V3).locator("input").is_checked()
    assert page.is_visible("#pp-mode")


def test_a_number_outside_the_schema_range_is_refused_naming_the_param(
    page: Page, gateway: Gateway
) -> None:
    _open(page, gateway.server)
    page.fill("#model-search", "kling-video/v2.5-turbo/pro/text")
    _card(page, CFG_MODEL).click()
    assert page.get_attribute("#pp-cfg_scale", "max") == "1"
    page.fill("#pp-cfg_scale", "5")
    page.fill("#prompt", "a paper lantern rising into the night")
    page.click("#submit")
    box = page.locator("#form-messages .alert")
    box.wait_for()
    assert "(provider_params.cfg_scale)" in box.locator(".alert-title").inner_text()
    assert "5 is greater than the maximum of 1" in box.inner_text()


def test_a_schema_violation_shows_the_values_the_schema_allows(
    page: Page, gateway: Gateway
) -> None:
    def stale(route: Route) -> None:
        # a page that read the schema before upstream dropped a mode: "ultra" still listed
        body = route.fetch().json()
        for m in body["data"]:
            if m["id"] == KLING_V3:
                m["synced"]["provider_params"]["mode"]["enum"].append("ultra")
        route.fulfill(json=body)

    page.route("**/v1/models?*", stale)
    _open(page, gateway.server)
    _pick_kling_v3(page)
    page.select_option("#pp-mode", label="ultra")
    page.fill("#prompt", "a paper boat drifting down a gutter stream")
    page.click("#submit")
    box = page.locator("#form-messages .alert")
    box.wait_for()
    assert "(provider_params.mode)" in box.locator(".alert-title").inner_text()
    assert "'ultra' is not one of" in box.inner_text()
    assert box.locator(".allowed code").all_inner_texts() == ["standard", "pro"]


def test_a_synced_model_picked_in_the_studio_is_offered_to_a_storyboards_shots(
    page: Page, gateway: Gateway
) -> None:
    _open(page, gateway.server)
    _pick_kling_v3(page)
    page.click("#nav-storyboard")
    card = page.locator('.shot-card[data-shot="1"]')
    card.locator(".shot-model").wait_for()
    # the first shot starts with the studio's model, with its audio switch and inputs
    assert card.locator(".shot-model").input_value() == KLING_V3
    assert card.locator(".shot-audio").is_visible()
    assert "mode" in (card.locator(".shot-provider-params").get_attribute("placeholder") or "")
