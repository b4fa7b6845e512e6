"""What a sync decides (``catalog.synced.sync.merge``), the ids it gives, and the
operator's ``[models."fal:<id>"]`` settings: the parts of issue 16 that need no server."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from reelgate.catalog.catalog import load_catalog
from reelgate.catalog.synced.model import MAX_ID, SyncedModel, catalog_id, to_spec
from reelgate.catalog.synced.prices import PRICES, price_of
from reelgate.catalog.synced.schema import fal_input_schema
from reelgate.catalog.synced.store import specs_of
from reelgate.catalog.synced.sync import Fetched, SyncReport, merge
from reelgate.emulators.recorded import fal_records
from reelgate.errors import ReelgateError

T2V = "wan/v2.6/text-to-video"
I2V = "fal-ai/kling-video/v2.1/standard/image-to-video"


def _fetched(endpoint: str, record: dict | None = None) -> Fetched:
    record = record or fal_records()[endpoint]
    return Fetched(
        provider="fal",
        upstream_id=endpoint,
        category=record["category"],
        display_name=record["display_name"],
        description="",
        schema=fal_input_schema(record["openapi"], endpoint),
        version=None,
        source="test",
    )


def _store(rows: list[SyncedModel], written: list[SyncedModel]) -> list[SyncedModel]:
    by_id = {r.id: r for r in rows}
    by_id.update({r.id: r for r in written})
    return list(by_id.values())


def _merge(rows: list[SyncedModel], found: list[Fetched], now: int) -> tuple[list, SyncReport]:
    report = SyncReport()
    written = merge(
        rows,
        found,
        provider="fal",
        categories=("text-to-video", "image-to-video"),
        now=now,
        report=report,
    )
    return _store(rows, written), report


def test_merge_finds_new_then_unchanged_then_changed_and_flagged_then_gone_then_back() -> None:
    rows, first = _merge([], [_fetched(T2V), _fetched(I2V)], now=1)
    assert sorted(first.new) == sorted([f"fal:{T2V}", f"fal:{I2V}"])
    rows, second = _merge(rows, [_fetched(T2V), _fetched(I2V)], now=2)
    assert (second.new, second.changed, second.gone, second.unchanged) == ([], [], [], 2)
    # kling 2.1 renames its start image: changed, and the mapping no longer fits
    record = copy.deepcopy(fal_records()[I2V])
    schemas = record["openapi"]["components"]["schemas"]
    name = next(n for n, s in schemas.items() if "image_url" in s.get("properties", {}))
    schemas[name]["properties"]["reference_image"] = schemas[name]["properties"].pop("image_url")
    schemas[name]["required"] = [
        "reference_image" if r == "image_url" else r for r in schemas[name]["required"]
    ]
    rows, third = _merge(rows, [_fetched(T2V), _fetched(I2V, record)], now=3)
    assert third.changed == [f"fal:{I2V}"]
    assert any("mapped -> unmappable" in m for m in third.flagged[f"fal:{I2V}"])
    kept = {r.id: r for r in rows}
    assert kept[f"fal:{I2V}"].first_seen_at == 1 and kept[f"fal:{I2V}"].changed_at == 3
    assert kept[f"fal:{T2V}"].changed_at == 1  # unchanged: its change time stays
    # wan 2.6 is no longer listed: retired, with the time it went
    rows, fourth = _merge(rows, [_fetched(I2V, record)], now=4)
    assert fourth.gone == [f"fal:{T2V}"]
    gone = {r.id: r for r in rows}[f"fal:{T2V}"]
    assert (gone.status, gone.retired_at) == ("retired", 4)
    # a later sync that still misses it does not retire it twice
    rows, fifth = _merge(rows, [_fetched(I2V, record)], now=5)
    assert fifth.gone == []
    # listed again: active once more
    rows, sixth = _merge(rows, [_fetched(T2V), _fetched(I2V, record)], now=6)
    assert sixth.returned == [f"fal:{T2V}"]
    back = {r.id: r for r in rows}[f"fal:{T2V}"]
    assert (back.status, back.retired_at) == ("active", None)


def test_a_sync_of_one_category_retires_nothing_of_the_other() -> None:
    rows, _ = _merge([], [_fetched(T2V), _fetched(I2V)], now=1)
    report = SyncReport()
    written = merge(
        rows, [_fetched(T2V)], provider="fal", categories=("text-to-video",), now=2, report=report
    )
    assert report.gone == []
    assert all(r.status == "active" for r in written)


def test_a_long_upstream_id_gets_a_stable_short_catalog_id() -> None:
    endpoint = "fal-ai/" + "very-long-name/" * 8 + "image-to-video"
    made = catalog_id("fal", endpoint)
    assert len(made) == MAX_ID and made.startswith("fal:fal-ai/very-long-name/")
    assert made == catalog_id("fal", endpoint)
    assert made != catalog_id("fal", endpoint + "-2")
    assert catalog_id("fal", T2V) == f"fal:{T2V}"


def test_a_retired_row_becomes_a_retired_route_with_its_date() -> None:
    rows, _ = _merge([], [_fetched(T2V)], now=1)
    rows, _ = _merge(rows, [], now=1_764_806_400_000)  # 2025-12-04
    spec = to_spec(rows[0], PRICES.get(rows[0].id))
    route = spec.route("fal")
    assert route.lifecycle.value == "retired"
    assert route.retires_at is not None and route.retires_at.isoformat() == "2025-12-04"


# ── the operator's word ─────────────────────────────────────────────────────────────


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reelgate.toml"
    path.write_text(text)
    return path


def test_an_operator_prices_an_unpriced_model_and_overrides_a_curated_price(
    tmp_path: Path,
) -> None:
    unpriced = "fal:fal-ai/magi"
    curated = f"fal:{T2V}"
    assert price_of(unpriced, {}) is None and price_of(curated, {}) is not None
    catalog = load_catalog(
        _config(
            tmp_path,
            f"""
[models."{unpriced}"]
price_per_second = 120
resolution_prices = {{ "720p" = 150 }}
price_source = "our fal invoice, 2026-11"
fallback = ["{curated}"]
display_name = "MAGI-1 (ours)"

[models."{curated}"]
price_per_second = 90
""",
        )
    )
    prices = catalog.synced_settings.prices
    assert prices[unpriced].per_second == 120
    assert dict(prices[unpriced].by_resolution) == {"720p": 150}
    assert prices[unpriced].source == "operator: our fal invoice, 2026-11"
    assert price_of(curated, prices).per_second == 90  # type: ignore[union-attr]
    assert catalog.synced_settings.fallback[unpriced] == (curated,)
    # the settings reach the synced entries when they are built
    record = fal_records()["fal-ai/magi"]
    rows, _ = _merge([], [_fetched("fal-ai/magi", record)], now=1)
    (spec,) = specs_of(catalog, rows)
    assert spec.price_per_second == 120 and spec.display_name == "MAGI-1 (ours)"
    assert spec.fallback == (curated,)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("price_per_second = 1.5", "whole number of millicredits"),
        ("price_per_second = -1", "whole number of millicredits"),
        ('price_per_second = "12"', "whole number of millicredits"),
        ('resolution_prices = { "720p" = 10 }', "needs price_per_second too"),
        ('price_per_second = 10\nresolution_prices = { "720p" = 1.5 }', "resolution_prices"),
        ('base = "veo-3"', "cannot be set for the synced model"),
    ],
)
def test_a_bad_synced_model_setting_is_refused_naming_what_to_write(
    tmp_path: Path, body: str, says: str
) -> None:
    with pytest.raises(ReelgateError) as caught:
        load_catalog(_config(tmp_path, f'[models."fal:fal-ai/magi"]\n{body}\n'))
    assert caught.value.code == "bad_config"
    assert says in str(caught.value) and "fal:fal-ai/magi" in str(caught.value)


def test_an_operator_names_a_long_model_by_its_full_id_and_any_resolution_case(
    tmp_path: Path,
) -> None:
    endpoint = "fal-ai/" + "very-long-name/" * 4 + "magi"
    record = copy.deepcopy(fal_records()["fal-ai/magi"])
    record["openapi"]["paths"] = {f"/{endpoint}": record["openapi"]["paths"]["/fal-ai/magi"]}
    rows, _ = _merge([], [_fetched(endpoint, record)], now=1)
    assert rows[0].id != f"fal:{endpoint}"  # shortened past 64 characters
    catalog = load_catalog(
        _config(
            tmp_path,
            f'[models."fal:{endpoint}"]\nprice_per_second = 77\n'
            'resolution_prices = { "720P" = 99 }\ndisplay_name = "Long"\n',
        )
    )
    (spec,) = specs_of(catalog, rows)
    assert spec.price_per_second == 77 and spec.display_name == "Long"
    assert spec.price_for("720p") == 99


def test_every_price_that_moves_with_an_input_starts_from_the_schemas_default() -> None:
    """A base price is for the model's defaults: a request that leaves the input out
    pays it, so the curated base must be what the schema defaults to."""
    from tests.unit.test_synced_mapping import MAPS, RECORDED

    checked = 0
    for model_id, price in PRICES.items():
        if not price.base or model_id not in RECORDED:
            continue
        schema, fm = RECORDED[model_id][0], MAPS[model_id]
        for name, value in price.base.items():
            field = fm.audio if name == "audio" else name
            assert field is not None and field in schema.props, (model_id, name)
            assert schema.props[field].default == value, (model_id, name)
            checked += 1
        for v in price.variants:
            assert set(v.when) <= set(price.base), model_id
    assert checked >= 12


def test_an_invalid_json_schema_is_a_schema_problem_and_a_stored_hash_is_not_checked_again() -> (
    None
):
    """A sync reads a schema it has stored before without checking it again (most of a
    sync's cost); a new one that is not a valid JSON Schema is skipped, never a crash."""
    from reelgate.catalog.synced.schema import SchemaProblem

    record = copy.deepcopy(fal_records()[T2V])
    schemas = record["openapi"]["components"]["schemas"]
    name = next(n for n, s in schemas.items() if "prompt" in s.get("properties", {}))
    schemas[name]["properties"]["prompt"]["minLength"] = "not a number"
    with pytest.raises(SchemaProblem, match="not a valid JSON Schema"):
        fal_input_schema(record["openapi"], T2V)
    stored = fal_input_schema(fal_records()[T2V]["openapi"], T2V)
    again = fal_input_schema(fal_records()[T2V]["openapi"], T2V, known={stored.hash})
    assert again.hash == stored.hash


def test_every_recorded_schema_says_where_it_was_read() -> None:
    from reelgate.emulators.recorded import replicate_records

    records = {**fal_records(), **replicate_records()}
    assert len(records) == 73
    for name, record in records.items():
        source = str(record.get("SOURCE", ""))
        assert len(source) > 30 and ("http" in source or "@" in source), (name, source)
