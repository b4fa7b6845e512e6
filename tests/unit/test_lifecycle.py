"""Model life cycle as data: a route's dates move a model to deprecated and retired,
a retired model is refused at submit naming its successor (or served by it when the
operator says so), and a provider's "this model is gone" answer falls back and marks
the model unavailable instead of failing the job."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from reelgate.catalog import Catalog, load_catalog
from reelgate.catalog.lifecycle import RouteOf, Unavailable
from reelgate.catalog.models import Lifecycle, Route
from reelgate.catalog.routing import Served
from reelgate.catalog.validate import Submission, validate_submission
from reelgate.engine import planner as p
from reelgate.errors import Gone, ModelGone, ReelgateError
from reelgate.job import AttemptOutcome, JobState
from tests.unit.test_planner import rules, running, submitting
from tests.values import NOW

CATALOG = load_catalog()
DAY = date(2026, 12, 1)


def routes(**by_kind: str) -> RouteOf:
    """The route each provider kind is deployed on (unlisted kinds: none)."""
    return lambda kind: by_kind.get(kind)


def test_dates_move_a_route_along_its_life_cycle() -> None:
    route = Route(
        "m-1", Lifecycle.PREVIEW, deprecated_at=date(2026, 9, 1), retires_at=date(2026, 10, 22)
    )
    assert route.lifecycle_on(date(2026, 8, 31)) is Lifecycle.PREVIEW
    assert route.lifecycle_on(date(2026, 9, 1)) is Lifecycle.DEPRECATED
    assert route.lifecycle_on(date(2026, 10, 21)) is Lifecycle.DEPRECATED
    assert route.lifecycle_on(date(2026, 10, 22)) is Lifecycle.RETIRED
    assert Route("m-2", Lifecycle.RETIRED).lifecycle_on(date(2000, 1, 1)) is Lifecycle.RETIRED


def test_veo_is_retired_on_the_gemini_api_and_in_service_on_vertex() -> None:
    veo = CATALOG.get("veo-3-1")
    assert veo.route("vertex").upstream_model == "veo-3.1-generate-001"
    assert veo.route("vertex").lifecycle_on(DAY) is Lifecycle.GA
    assert veo.route("gemini").upstream_model == "veo-3.1-generate-preview"
    assert veo.route("gemini").lifecycle_on(DAY) is Lifecycle.RETIRED
    sub = Submission(model="veo-3-1", duration_seconds=8)
    on_vertex = validate_submission(CATALOG, sub, route_of=routes(veo="vertex"), day=DAY)
    assert on_vertex.chain == ["veo-3-1"]
    with pytest.raises(Gone) as refused:
        validate_submission(CATALOG, sub, route_of=routes(veo="gemini"), day=DAY)
    err = refused.value
    assert (err.http_status, err.code, err.details["retired_at"]) == (
        410,
        "model_retired",
        "2026-10-22",
    )
    assert "gemini route" in err.message
    # the day before, the preview id was still served
    before = validate_submission(
        CATALOG, sub, route_of=routes(veo="gemini"), day=date(2026, 10, 21)
    )
    assert before.chain == ["veo-3-1"]


def test_a_retired_model_is_refused_naming_its_successor() -> None:
    with pytest.raises(Gone) as refused:
        validate_submission(
            CATALOG, Submission(model="sora-2"), route_of=routes(sora="azure"), day=DAY
        )
    err = refused.value
    assert err.details["successor"] == "veo-3-1" and err.details["param"] == "model"
    assert "'veo-3-1'" in err.message and "2026-10-15" in err.message


def test_the_operator_may_serve_a_retired_model_with_its_successor() -> None:
    sora = replace(CATALOG.get("sora-2"), route_to_successor=True)
    catalog = Catalog([sora, *(m for m in CATALOG if m.id != "sora-2")])
    checked = validate_submission(
        catalog,
        Submission(model="sora-2", duration_seconds=4),
        route_of=routes(sora="openai", veo="vertex"),
        day=DAY,
    )
    assert checked.chain == ["veo-3-1"]  # validated against the model that serves it


def test_a_retired_model_with_something_to_fall_back_to_is_accepted_and_skipped() -> None:
    """A retired model never fails a job that has a fallback: the chain keeps it (the
    engine skips it, recorded as ``gone``) as long as one model of it is served."""
    where = routes(sora="openai", veo="vertex", local="local")
    first = validate_submission(
        CATALOG,
        Submission(model="sora-2", fallback=("local",), duration_seconds=4),
        route_of=where,
        day=DAY,
    )
    assert first.chain == ["sora-2", "local"]
    middle = validate_submission(
        CATALOG,
        Submission(model="local", fallback=("sora-2", "veo-3-1-fast"), duration_seconds=4),
        route_of=where,
        day=DAY,
    )
    assert middle.chain == ["local", "sora-2", "veo-3-1-fast"]
    # the operator's default chain leaves a retired entry out
    local = replace(CATALOG.get("local"), fallback=("sora-2", "veo-3-1-fast"))
    catalog = Catalog([local, *(m for m in CATALOG if m.id != "local")])
    checked = validate_submission(
        catalog, Submission(model="local", duration_seconds=4), route_of=where, day=DAY
    )
    assert checked.chain == ["local", "veo-3-1-fast"]


def test_the_config_file_changes_a_route_and_checks_its_words(tmp_path: Path) -> None:
    config = tmp_path / "reelgate.toml"
    config.write_text(
        '[models."veo-3-1".routes.gemini]\nlifecycle = "ga"\nretires_at = ""\n'
        '[models."veo-3-1".routes.eu]\nupstream_model = "veo-eu"\nretires_at = 2027-03-01\n'
    )
    veo = load_catalog(config).get("veo-3-1")
    assert veo.route("gemini").lifecycle_on(DAY) is Lifecycle.GA
    assert veo.route("gemini").upstream_model == "veo-3.1-generate-preview"
    assert veo.route("eu") == Route("veo-eu", retires_at=date(2027, 3, 1))
    config.write_text('[models."veo-3-1".routes.gemini]\nlifecycle = "sunset"\n')
    with pytest.raises(ReelgateError, match="lifecycle"):
        load_catalog(config)
    config.write_text('[models."veo-3-1".routes.gemini]\nretired = true\n')
    with pytest.raises(ReelgateError, match="route setting"):
        load_catalog(config)
    config.write_text('[models."veo-3-1"]\nsuccessor = "veo-9"\n')
    with pytest.raises(ReelgateError, match="successor"):
        load_catalog(config)


@pytest.mark.parametrize("state", ["submitting", "running"])
def test_a_gone_model_falls_back_and_is_marked_unavailable(state: str) -> None:
    before = (submitting if state == "submitting" else running)(chain=("local", "other"))
    if state == "submitting":
        before = replace(before, attempts=(replace(before.attempts[0], create_pending=False),))
    error = ModelGone("models/x is no longer available", upstream_status=404)
    served = Served("local", "local", Route("local-renderer"))
    t = p.plan(before, p.Failed(error), NOW, rules(served=served, gone_mark_seconds=3600))
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1
    assert t.job.attempts[-1].outcome is AttemptOutcome.GONE
    assert t.unavailable == Unavailable(
        "local:local:local-renderer",
        "local",
        "its provider answered HTTP 404 model_gone: the model is not served there",
        NOW,
        NOW + 3_600_000,
    )
    assert t.cooldown is None and t.settle is None  # the hold waits for the next model


def test_a_gone_model_with_nothing_to_fall_back_to_fails_unbilled() -> None:
    t = p.plan(running(), p.Failed(ModelGone("Model not exist.")), NOW, rules())
    assert t.job.state is JobState.FAILED and t.settle == 0
    assert t.job.error is not None and t.job.error.code == "model_gone"
    assert "no longer served" in t.job.error.message and t.unavailable is not None


def test_a_model_marked_unavailable_is_skipped_without_marking_it_again() -> None:
    queued = submitting(chain=("local", "other"), state=JobState.QUEUED, attempts=())
    t = p.plan(queued, p.MarkedGone("404 is no longer available"), NOW, rules())
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1
    assert t.unavailable is None
    assert t.job.attempts[-1].outcome is AttemptOutcome.GONE


def test_a_quoted_date_or_the_old_deprecated_key_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "reelgate.toml"
    config.write_text('[models."veo-3-1".routes.gemini]\nretires_at = "2027-01-31"\n')
    with pytest.raises(ReelgateError, match="must be a TOML date"):
        load_catalog(config)
    config.write_text('[models."sora-2"]\ndeprecated = "works through Azure only"\n')
    assert "(deprecated: works through Azure only)" in load_catalog(config).get("sora-2").notes


def test_a_retired_models_limits_do_not_refuse_what_the_fallback_serves() -> None:
    where = routes(sora="openai", local="local")
    checked = validate_submission(
        CATALOG,
        Submission(model="sora-2", fallback=("local",), duration_seconds=2),  # sora: 4/8/12
        route_of=where,
        day=DAY,
    )
    assert checked.chain == ["sora-2", "local"] and checked.params.duration_seconds == 2
