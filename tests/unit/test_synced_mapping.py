"""The curated mapping (``catalog.synced.mapping``) over every schema recorded from fal
and Replicate (``emulators/recorded``), checked by ``jsonschema`` itself.

The checker is the emulators' (``RecordedInput``), which reads the recorded documents
without any of the gateway's code: every input the mapping builds, for every
(duration, resolution, aspect ratio) a mapped model offers, must be one the provider's
own schema accepts. The figures the issue asks for (usable, mapped, unpriced,
unmappable) are pinned here, so a change to the mapping that moves them says so.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from reelgate.catalog.synced.check import IMAGE_STAND_IN, check_param_names
from reelgate.catalog.synced.mapping import OVERRIDES, FieldMap, derive
from reelgate.catalog.synced.model import SyncedModel, catalog_id, to_spec
from reelgate.catalog.synced.prices import PRICES
from reelgate.catalog.synced.schema import InputSchema, fal_input_schema, replicate_input_schema
from reelgate.emulators.recorded import RecordedInput, fal_records, replicate_records
from reelgate.errors import ValidationFailed


def _recorded() -> dict[str, tuple[InputSchema, RecordedInput, str]]:
    """catalog id -> (the gateway's reading, the emulators' checker, category)."""
    out: dict[str, tuple[InputSchema, RecordedInput, str]] = {}
    for endpoint, record in fal_records().items():
        doc = record["openapi"]
        post = doc["paths"][f"/{endpoint}"]["post"]
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        out[catalog_id("fal", endpoint)] = (
            fal_input_schema(doc, endpoint),
            RecordedInput(doc, ref.removeprefix("#")),
            record["category"],
        )
    for model, record in replicate_records().items():
        schema = record["model"]["latest_version"]["openapi_schema"]
        out[catalog_id("replicate", model)] = (
            replicate_input_schema(schema),
            RecordedInput(schema, "/components/schemas/Input"),
            record["category"],
        )
    return out


RECORDED = _recorded()
MAPS: dict[str, FieldMap] = {
    model_id: derive(model_id, schema, category)
    for model_id, (schema, _check, category) in RECORDED.items()
}
MAPPED = sorted(m for m, fm in MAPS.items() if fm.status == "mapped")


def test_the_recorded_schemas_yield_the_figures_of_the_closing_note() -> None:
    fal = [m for m in RECORDED if m.startswith("fal:")]
    rep = [m for m in RECORDED if m.startswith("replicate:")]
    assert len(fal) >= 20 and len(rep) >= 10, "the issue asks for 20 fal and 10 Replicate"
    unmappable = sorted(m for m, fm in MAPS.items() if fm.status == "unmappable")
    priced = [m for m in MAPPED if m in PRICES]
    figures = {
        "recorded": len(RECORDED),
        "mapped": len(MAPPED),
        "unmappable": len(unmappable),
        "usable": len(priced),
        "unpriced": len(MAPPED) - len(priced),
    }
    assert figures == {
        "recorded": 73,
        "mapped": 67,
        "unmappable": 6,
        "usable": 47,
        "unpriced": 20,
    }
    # each unmappable model says why, in words an operator can act on
    for model_id in unmappable:
        assert MAPS[model_id].problems, model_id


def _combos(fm: FieldMap) -> list[tuple[int, str, str]]:
    assert fm.allowed is not None
    a = fm.allowed
    return [
        (seconds, res, aspect)
        for res, aspect in itertools.product(a.resolutions, a.aspect_ratios)
        for seconds in a.durations_for(res)
    ]


@pytest.mark.parametrize("model_id", MAPPED)
def test_every_input_the_mapping_builds_is_one_the_providers_schema_accepts(
    model_id: str,
) -> None:
    schema, check, _category = RECORDED[model_id]
    fm = MAPS[model_id]
    extra_allowed = model_id.startswith("replicate:")  # Cog ignores unknown inputs
    combos = _combos(fm)
    assert combos, f"{model_id} offers nothing"
    for seconds, res, aspect in combos:
        body = fm.build(
            prompt="a lighthouse at dusk, waves",
            seconds=seconds,
            resolution=res,
            aspect_ratio=aspect,
            has_image=fm.image is not None,
            audio=True if fm.audio else None,
            negative_prompt="blur" if fm.negative_prompt else None,
            seed=7 if fm.seed else None,
        )
        if fm.image is not None:
            body[fm.image] = IMAGE_STAND_IN
        body.update(_required_natives(schema, fm))
        problems = check.check(body, extra_allowed=extra_allowed)
        assert not problems, (model_id, (seconds, res, aspect), body, problems)
    # what the mapping does not carry is left for provider_params, and only that
    assert set(fm.native).isdisjoint(fm.mapped_fields.values()), model_id
    assert set(fm.native) <= set(schema.props), model_id


def _required_natives(schema: InputSchema, fm: FieldMap) -> dict[str, Any]:
    """What a caller must give in provider_params (Veo's last frame, a reference
    video...): its first enum value, else a stand-in URL or a number in range."""
    out: dict[str, Any] = {}
    for name in fm.native:
        prop = schema.props[name]
        if not prop.required:
            continue
        if prop.enum:
            out[name] = prop.enum[0]
        elif "string" in prop.types or not prop.types:
            out[name] = IMAGE_STAND_IN
        elif {"integer", "number"} & set(prop.types):
            out[name] = int(prop.minimum or 1)
        elif "boolean" in prop.types:
            out[name] = True
    return out


def _field(family_value: str) -> list[str]:
    return sorted(m for m in MAPPED if MAPS[m].image == family_value)


@pytest.mark.parametrize(
    "name", ["image_url", "start_image_url", "first_frame_image", "image", "start_image"]
)
def test_each_start_image_name_the_issue_names_is_met_in_a_recorded_schema(name: str) -> None:
    assert _field(name), f"no recorded schema takes its start image as {name}"


def test_durations_in_every_unit_the_issue_names_are_sent_in_that_unit() -> None:
    kinds: dict[str, list[tuple[int, Any]]] = {}
    for m in MAPPED:
        d = MAPS[m].duration
        if d is not None:
            kinds.setdefault(d.kind, list(d.wire))
    assert {"string_s", "string", "integer"} <= set(kinds), sorted(kinds)
    seconds, sent = kinds["string_s"][0]
    assert sent == f"{seconds}s"  # "8s"
    seconds, sent = kinds["string"][0]
    assert sent == str(seconds)  # "8"
    seconds, sent = kinds["integer"][0]
    assert sent == seconds and isinstance(sent, int)  # 8


def test_an_audio_switch_is_a_boolean_and_an_audio_file_input_is_never_one() -> None:
    switches = {MAPS[m].audio for m in MAPPED if MAPS[m].audio}
    assert {"generate_audio"} <= switches, switches
    for m in MAPPED:
        fm = MAPS[m]
        schema = RECORDED[m][0]
        if fm.audio:
            assert "boolean" in schema.props[fm.audio].types, (m, fm.audio)
        for name in ("audio_url", "audio"):
            if name in schema.props and "boolean" not in schema.props[name].types:
                assert fm.audio != name, m
                assert name in fm.native, (m, name)


def test_every_override_names_its_source_and_still_fits_its_schema() -> None:
    for model_id, override in OVERRIDES.items():
        assert override.source.strip(), model_id
        if model_id in MAPS:
            fm = MAPS[model_id]
            assert fm.override_source == override.source, model_id
            if fm.status != "mapped":
                continue  # the rule waits for the model to become mappable
            assert fm.allowed is not None
            for res, seconds in override.durations_by_resolution.items():
                if res in fm.allowed.resolutions:
                    assert fm.allowed.durations_for(res) == seconds, (model_id, res)


def test_hailuo_02s_10_s_only_below_1080p_is_the_curated_rule_from_its_description() -> None:
    fm = MAPS["replicate:minimax/hailuo-02"]
    assert fm.allowed is not None
    assert fm.allowed.durations_for("1080p") == (6,)
    assert fm.allowed.durations_for("768p") == (6, 10)


def test_every_curated_price_has_a_dated_source_and_an_integer_amount() -> None:
    for model_id, price in PRICES.items():
        assert model_id.startswith(("fal:", "replicate:")), model_id
        assert isinstance(price.per_second, int) and price.per_second > 0, model_id
        assert all(isinstance(v, int) and v > 0 for v in price.by_resolution.values())
        assert "20" in price.source and len(price.source) > 20, (model_id, price.source)


# --- aspect names, prose-only duration rules, secret inputs -------------------------


def _cog(properties: dict[str, Any], required: list[str], **schemas: Any) -> InputSchema:
    """A Cog-style openapi_schema with ``properties`` as its Input."""
    return replicate_input_schema(
        {
            "openapi": "3.0.2",
            "components": {
                "schemas": {
                    "Input": {
                        "type": "object",
                        "title": "Input",
                        "required": required,
                        "properties": properties,
                    },
                    **schemas,
                }
            },
        }
    )


_PROMPT = {"type": "string", "x-order": 0}
_SECONDS = {"type": "integer", "enum": [4, 8], "default": 4, "x-order": 1}


def _sora2_body(fm: FieldMap, aspect: str) -> dict[str, Any]:
    return fm.build(
        prompt="a lighthouse at dusk",
        seconds=4,
        resolution="720p",
        aspect_ratio=aspect,
        has_image=False,
    )


def test_sora_2_on_replicate_offers_both_aspects_and_sends_its_own_names() -> None:
    model_id = "replicate:openai/sora-2"
    fm = MAPS[model_id]
    assert fm.status == "mapped" and fm.allowed is not None
    assert fm.aspect == "aspect_ratio"
    assert fm.allowed.aspect_ratios == ("16:9", "9:16")
    assert fm.defaults[1] == "16:9"  # not Replicate's own default, portrait
    assert _sora2_body(fm, "16:9")["aspect_ratio"] == "landscape"
    assert _sora2_body(fm, "9:16")["aspect_ratio"] == "portrait"
    assert not any("aspect_ratio value" in p for p in fm.problems), fm.problems
    check = RECORDED[model_id][1]
    for aspect in fm.allowed.aspect_ratios:
        assert not check.check(_sora2_body(fm, aspect), extra_allowed=True), aspect


@pytest.mark.parametrize(
    ("values", "wire"),
    [
        (
            ["Landscape", "PORTRAIT", "square"],
            {"16:9": "Landscape", "9:16": "PORTRAIT", "1:1": "square"},
        ),
        (
            ["16:9 (landscape)", "9:16 (portrait)", "1:1 (square)", "4:3"],
            {
                "16:9": "16:9 (landscape)",
                "9:16": "9:16 (portrait)",
                "1:1": "1:1 (square)",
                "4:3": "4:3",
            },
        ),
        (
            ["landscape (16:9)", "portrait 9:16"],
            {"16:9": "landscape (16:9)", "9:16": "portrait 9:16"},
        ),
    ],
)
def test_an_aspect_value_spelled_as_a_name_or_with_one_is_mapped_to_its_ratio(
    values: list[str], wire: dict[str, str]
) -> None:
    schema = _cog(
        {
            "prompt": _PROMPT,
            "seconds": _SECONDS,
            "aspect_ratio": {"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}]},
        },
        ["prompt"],
        aspect_ratio={"type": "string", "enum": values},
    )
    fm = derive("replicate:example/aspects", schema, "text-to-video")
    assert fm.status == "mapped" and fm.allowed is not None
    sent = dict(fm.aspect_wire)
    for ratio, value in wire.items():
        assert sent[ratio] == value
        assert (
            fm.build(prompt="x", seconds=4, resolution="720p", aspect_ratio=ratio, has_image=False)[
                "aspect_ratio"
            ]
            == value
        )
    assert set(fm.allowed.aspect_ratios) == set(sent) == set(wire)
    assert fm.allowed.aspect_ratios[0] == "16:9"


def test_an_aspect_value_whose_name_and_ratio_disagree_is_left_out_and_said() -> None:
    schema = _cog(
        {
            "prompt": _PROMPT,
            "seconds": _SECONDS,
            "aspect_ratio": {
                "type": "string",
                "enum": ["9:16 (landscape)", "16:9", "1:2.5", "Landscape", "16:9 HD"],
            },
        },
        ["prompt"],
    )
    fm = derive("replicate:example/aspects", schema, "text-to-video")
    assert fm.status == "mapped" and fm.allowed is not None
    assert fm.allowed.aspect_ratios == ("16:9",)
    assert any("'9:16 (landscape)'" in p for p in fm.problems), fm.problems
    assert any("'1:2.5'" in p for p in fm.problems), fm.problems
    assert any("'16:9 HD'" in p for p in fm.problems), fm.problems
    # a second spelling of a ratio already offered is said, and the first one is sent
    assert dict(fm.aspect_wire)["16:9"] == "16:9"
    assert any("'Landscape' is 16:9 again" in p for p in fm.problems), fm.problems


def test_hailuo_2_3_fasts_1080p_only_at_6_s_is_the_curated_rule_from_its_description() -> None:
    model_id = "replicate:minimax/hailuo-2.3-fast"
    schema = RECORDED[model_id][0]
    assert "1080p supports only 6-second duration." in schema.props["resolution"].description
    assert "10 seconds is only available for 768p" in schema.props["duration"].description
    fm = MAPS[model_id]
    assert fm.allowed is not None
    assert fm.allowed.durations_for("1080p") == (6,)
    assert fm.allowed.durations_for("768p") == (6, 10)
    assert OVERRIDES[model_id].source == fm.override_source
    assert "1080p supports only 6-second duration." in OVERRIDES[model_id].source


@pytest.mark.parametrize(
    ("model_id", "quote", "rule"),
    [
        (
            "replicate:pixverse/pixverse-v5.6",
            "10 second videos are only available for 360p, 540p, and 720p.",
            {"1080p": (5, 8), "720p": (5, 8, 10)},
        ),
        (
            "fal:fal-ai/pixverse/v5.5/text-to-video",
            "1080p videos are limited to 5 or 8 seconds",
            {"1080p": (5, 8), "720p": (5, 8, 10)},
        ),
        (
            "fal:fal-ai/pixverse/v5.5/image-to-video",
            "1080p videos are limited to 5 or 8 seconds",
            {"1080p": (5, 8), "720p": (5, 8, 10)},
        ),
    ],
)
def test_every_prose_only_duration_rule_found_in_a_recorded_description_is_curated(
    model_id: str, quote: str, rule: dict[str, tuple[int, ...]]
) -> None:
    schema = RECORDED[model_id][0]
    assert any(quote in p.description for p in schema.props.values()), model_id
    assert quote in OVERRIDES[model_id].source
    fm = MAPS[model_id]
    assert fm.allowed is not None
    for res, seconds in rule.items():
        assert fm.allowed.durations_for(res) == seconds, (model_id, res)


def test_sora_2s_own_openai_key_is_a_secret_never_offered_as_a_provider_param() -> None:
    model_id = "replicate:openai/sora-2"
    schema = RECORDED[model_id][0]
    key = schema.props["openai_api_key"]
    assert key.secret and not key.required
    assert not any(p.secret for n, p in schema.props.items() if n != "openai_api_key")
    fm = MAPS[model_id]
    assert fm.status == "mapped"  # the key is optional: the model stays usable
    assert "openai_api_key" not in fm.native
    assert "input_reference" in fm.native
    # no recorded model offers a secret among its own inputs
    for m in MAPPED:
        props = RECORDED[m][0].props
        assert not [n for n in MAPS[m].native if props[n].secret], m
    # and the gateway refuses one sent in provider_params, before anything is stored
    row = SyncedModel(
        id=model_id,
        provider="replicate",
        upstream_id="openai/sora-2",
        category="text-to-video",
        display_name="sora-2",
        description="",
        schema=schema,
        schema_hash=schema.hash,
        version=None,
        status="active",
        mapping_status="mapped",
        problems=(),
        source="recorded",
        first_seen_at=0,
        fetched_at=0,
        changed_at=0,
    )
    spec = to_spec(row, PRICES.get(model_id))
    assert spec.synced is not None
    assert "openai_api_key" not in spec.synced.to_wire()["provider_params"]
    with pytest.raises(ValidationFailed) as refused:
        check_param_names(spec, {"openai_api_key": "sk-not-a-real-key"})
    assert "openai_api_key" in str(refused.value)
    assert "secret input" in str(refused.value)
    assert "sk-not-a-real-key" not in str(refused.value)  # a key is never echoed
    check_param_names(spec, {"input_reference": IMAGE_STAND_IN})  # an own input passes


@pytest.mark.parametrize(
    "marker",
    [{"x-cog-secret": True}, {"writeOnly": True}, {"format": "password"}],
)
def test_each_secret_marker_is_found_through_allof_and_ref(marker: dict[str, Any]) -> None:
    schema = _cog(
        {
            "prompt": _PROMPT,
            "seconds": _SECONDS,
            "api_token": {"allOf": [{"$ref": "#/components/schemas/Token"}], "x-order": 2},
            "style": {"type": "string", "x-order": 3},
        },
        ["prompt"],
        Token={"type": "string", **marker},
    )
    assert schema.props["api_token"].secret
    assert not schema.props["style"].secret
    fm = derive("replicate:example/secret", schema, "text-to-video")
    assert fm.status == "mapped"
    assert fm.native == ("style",)


def test_a_model_that_requires_a_secret_input_is_unmappable_and_says_why() -> None:
    schema = _cog(
        {
            "prompt": _PROMPT,
            "seconds": _SECONDS,
            "api_key": {
                "type": "string",
                "format": "password",
                "writeOnly": True,
                "x-cog-secret": True,
            },
        },
        ["prompt", "api_key"],
    )
    fm = derive("replicate:example/needs-key", schema, "text-to-video")
    assert fm.status == "unmappable"
    assert fm.allowed is None and fm.native == ()
    assert (
        "requires a secret input api_key (a key of its own); reelgate does not pass keys "
        "through" in fm.problems
    )
