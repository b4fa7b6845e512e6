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

from reelgate.catalog.synced.check import IMAGE_STAND_IN
from reelgate.catalog.synced.mapping import OVERRIDES, FieldMap, derive
from reelgate.catalog.synced.model import catalog_id
from reelgate.catalog.synced.prices import PRICES
from reelgate.catalog.synced.schema import InputSchema, fal_input_schema, replicate_input_schema
from reelgate.emulators.recorded import RecordedInput, fal_records, replicate_records


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
