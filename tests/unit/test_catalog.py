from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgate.catalog import load_catalog, resolution_dims
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.errors import ReelgateError, ValidationFailed
from reelgate.job import JobParams

CATALOG = load_catalog()


def test_catalog_has_every_model_of_the_brief_plus_local() -> None:
    assert set(CATALOG.ids()) == {
        "veo-3-1",
        "veo-3-1-fast",
        "veo-3-1-lite",
        "sora-2",
        "wan-2-1",
        "wan-2-2",
        "wan-2-5",
        "grok-video",
        "grok-video-1-5",
        "veo (Audio)",
        "veo fast (Audio)",
        "local",
        # through fal and Replicate (issue 11)
        "kling-2-5-turbo",
        "seedance-1-pro",
        "hailuo-02",
        "luma-ray-2",
        "ltx-video",
        "pixverse-v5",
    }


def test_every_hosted_model_accepts_only_what_each_of_its_routes_can_render() -> None:
    """A public model's allowed values are the intersection of its routes' schemas: a
    request any route would refuse is refused at the API instead."""
    from reelgate.providers.fal import APPS
    from reelgate.providers.replicate import MODELS

    checked = 0
    for spec in CATALOG:
        for route in spec.routes.values():
            allowed = spec.allowed
            if route.provider == "fal" or (route.provider is None and spec.provider == "fal"):
                app = APPS[route.upstream_model]
                for endpoint in (app.t2v, app.i2v):
                    if endpoint is None:
                        continue
                    assert set(allowed.durations) <= set(endpoint.durations), (spec.id, endpoint)
                    if endpoint.resolutions:
                        names = {r.lower() for r in endpoint.resolutions}
                        assert {r.lower() for r in allowed.resolutions} <= names, spec.id
                    if endpoint.aspect_ratios and endpoint is app.t2v:
                        assert set(allowed.aspect_ratios) <= set(endpoint.aspect_ratios), spec.id
                    assert endpoint.negative_prompt or not allowed.negative_prompt, spec.id
                    assert endpoint.seed or not allowed.seed, spec.id
                checked += 1
            elif route.provider == "replicate":
                model = MODELS[route.upstream_model]
                if model.durations:
                    assert set(allowed.durations) <= set(model.durations), spec.id
                elif model.duration_range:
                    lo, hi = model.duration_range
                    assert all(lo <= d <= hi for d in allowed.durations), spec.id
                if model.resolutions and model.resolution_field:
                    assert set(allowed.resolutions) <= set(model.resolutions), spec.id
                if model.aspect_ratios and model.aspect_field:
                    assert set(allowed.aspect_ratios) <= set(model.aspect_ratios), spec.id
                assert model.negative_prompt or not allowed.negative_prompt, spec.id
                assert model.seed or not allowed.seed, spec.id
                checked += 1
    assert checked >= 14


def test_max_durations_follow_the_model_guide() -> None:
    # wan-2-1: the guide says 6 s, but DashScope's wan2.1 only renders 5 s (docs/providers/wan.md)
    # sora-2: the guide says 20 s, an OpenAI-only length that went with its Videos API on
    # 2026-09-24; openai-python's VideoSeconds and Azure list 4/8/12 (docs/providers/sora.md)
    expected = {"veo-3-1": 8, "veo-3-1-fast": 4, "sora-2": 12, "wan-2-1": 5, "grok-video": 6}
    assert {m: CATALOG.get(m).max_duration for m in expected} == expected


@pytest.mark.parametrize(
    ("resolution", "aspect", "dims"),
    [
        ("720p", "16:9", (1280, 720)),
        ("720p", "9:16", (720, 1280)),
        ("1080p", "16:9", (1920, 1080)),
        ("720p", "1:1", (720, 720)),
        ("480p", "16:9", (854, 480)),
    ],
)
def test_resolution_dims_are_even_and_follow_the_aspect(
    resolution: str, aspect: str, dims: tuple[int, int]
) -> None:
    assert resolution_dims(resolution, aspect) == dims


def test_unknown_model_lists_the_allowed_ids() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_submission(CATALOG, Submission(model="veo-9"))
    assert info.value.code == "unknown_model"
    assert "local" in info.value.details["allowed"]


def test_duration_outside_allowed_params_names_field_and_values() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_submission(CATALOG, Submission(model="veo-3-1-fast", duration_seconds=8))
    err = info.value.to_dict()
    assert err["param"] == "duration_seconds"
    assert err["allowed"] == [4]
    assert "veo-3-1-fast" in err["message"]


def test_fallback_model_must_accept_the_same_params() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_submission(
            CATALOG, Submission(model="veo-3-1", fallback=("veo-3-1-fast",), duration_seconds=8)
        )
    assert info.value.details["model"] == "veo-3-1-fast"


def test_defaults_fill_missing_params() -> None:
    checked = validate_submission(CATALOG, Submission(model="local"))
    assert checked.params == JobParams(
        duration_seconds=4, resolution="720p", aspect_ratio="16:9", width=1280, height=720
    )
    assert checked.chain == ["local"]


def test_service_models_carry_the_600s_deadline() -> None:
    checked = validate_submission(CATALOG, Submission(model="veo (Audio)", duration_seconds=4))
    assert checked.deadline_seconds == 600


@given(
    model=st.sampled_from(CATALOG.ids()),
    duration=st.integers(-5, 30),
    resolution=st.sampled_from(["360p", "480p", "512p", "720p", "1080p", "4k"]),
    aspect=st.sampled_from(["16:9", "9:16", "1:1", "21:9"]),
)
def test_validation_accepts_exactly_the_allowed_params(
    model: str, duration: int, resolution: str, aspect: str
) -> None:
    spec = CATALOG.get(model)
    ok = (
        duration in spec.allowed.durations
        and duration in spec.allowed.durations_for(resolution)
        and resolution in spec.allowed.resolutions
        and aspect in spec.allowed.aspect_ratios
    )
    sub = Submission(
        model=model, duration_seconds=duration, resolution=resolution, aspect_ratio=aspect
    )
    if ok:
        checked = validate_submission(CATALOG, sub)
        assert checked.params.width % 2 == 0 and checked.params.height % 2 == 0
    else:
        with pytest.raises(ValidationFailed):
            validate_submission(CATALOG, sub)


def test_config_file_overrides_price_and_adds_a_model(tmp_path: Path) -> None:
    cfg = tmp_path / "reelgate.toml"
    cfg.write_text(
        '[models."local"]\nprice_per_second = 5\nfallback = ["preview"]\n'
        '[models."preview"]\nbase = "local"\ndurations = [1, 2]\n'
    )
    catalog = load_catalog(cfg)
    assert catalog.get("local").price_per_second == 5
    assert catalog.get("preview").allowed.durations == (1, 2)
    assert validate_submission(catalog, Submission(model="local", duration_seconds=2)).chain == [
        "local",
        "preview",
    ]


def test_config_file_rejects_unknown_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "reelgate.toml"
    cfg.write_text('[models."local"]\nprize = 5\n')
    with pytest.raises(ReelgateError, match="prize"):
        load_catalog(cfg)


def test_veo_renders_1080p_only_at_8_seconds() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_submission(
            CATALOG, Submission(model="veo-3-1", resolution="1080p", duration_seconds=4)
        )
    assert info.value.details["allowed"] == [8]
    assert "at 1080p" in info.value.message
    ok = validate_submission(
        CATALOG, Submission(model="veo-3-1", resolution="1080p", duration_seconds=8)
    )
    assert ok.params.width == 1920


def test_docs_models_md_is_the_catalog_table() -> None:
    """docs/models.md is generated from the catalog: regenerate it when a model changes
    (``python -m reelgate.catalog.table > docs/models.md``)."""
    from pathlib import Path

    from reelgate.catalog.table import markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    assert doc.read_text(encoding="utf-8") == markdown(), (
        "docs/models.md is stale: run python -m reelgate.catalog.table > docs/models.md"
    )
    assert "kling-2-5-turbo" in doc.read_text(encoding="utf-8")
