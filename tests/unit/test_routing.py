"""Several routes per model: which deployments serve a model, in which order, and what
the planner does with a failure when the model has another route left."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from reelgate.catalog import load_catalog
from reelgate.catalog.lifecycle import retired_here
from reelgate.catalog.models import Lifecycle, ModelSpec, Route
from reelgate.catalog.routing import Served, served_routes
from reelgate.engine import planner as p
from reelgate.errors import ModelGone, QuotaExceeded, Refused, TransientError
from reelgate.job import AttemptOutcome, JobState
from reelgate.providers.base import UpstreamState, UpstreamStatus
from tests.unit.test_planner import rules, running, submitting
from tests.values import NOW

LOCAL = load_catalog().get("local")
DAY = date(2026, 12, 2)

SPEC = replace(
    LOCAL,
    id="multi",
    provider="wan",
    upstream_model="wan2.5-t2v-preview",
    routes={
        "intl": Route("wan2.5-t2v-preview", cost_per_second=9000),
        "fal": Route("fal-ai/wan-25-preview/text-to-video", provider="fal", cost_per_second=5625),
        "replicate": Route("wan-video/wan-2.5-t2v", provider="replicate", cost_per_second=9000),
    },
)


def deployed(**routes: str) -> object:
    return lambda kind: routes.get(kind)


def test_every_configured_route_serves_the_model_cheapest_first() -> None:
    found = served_routes(SPEC, deployed(wan="intl", fal="fal", replicate="replicate"))
    assert [(s.kind, s.name) for s in found] == [
        ("fal", "fal"),
        ("wan", "intl"),  # same cost as replicate: catalog order decides
        ("replicate", "replicate"),
    ]
    assert found[0].key == "fal:fal:fal-ai/wan-25-preview/text-to-video"
    assert found[0].upstream_model == "fal-ai/wan-25-preview/text-to-video"


def test_a_route_counts_only_when_its_provider_is_deployed_on_it() -> None:
    assert [s.kind for s in served_routes(SPEC, deployed(wan="intl"))] == ["wan"]
    # a DashScope deployment in Beijing serves the model's own id (no listed route);
    # its cost is unknown, so a route with a known cost goes first
    beijing = served_routes(SPEC, deployed(wan="beijing", replicate="replicate"))
    assert [(s.kind, s.name, s.upstream_model) for s in beijing] == [
        ("replicate", "replicate", "wan-video/wan-2.5-t2v"),
        ("wan", "beijing", "wan2.5-t2v-preview"),
    ]
    assert served_routes(SPEC, deployed()) == []


def test_operator_priority_beats_price_per_kind_and_per_model() -> None:
    everything = deployed(wan="intl", fal="fal", replicate="replicate")
    by_kind = served_routes(SPEC, everything, {"replicate": 1})
    assert [s.kind for s in by_kind] == ["replicate", "fal", "wan"]
    by_model = served_routes(SPEC, everything, {"replicate": 1, "multi:wan": 0})
    assert [s.kind for s in by_model] == ["wan", "replicate", "fal"]


def test_a_model_is_retired_only_when_every_route_serving_it_is() -> None:
    spec: ModelSpec = replace(
        SPEC,
        routes={
            "intl": Route("wan2.5-t2v-preview", lifecycle=Lifecycle.RETIRED),
            "fal": Route("fal-ai/wan-25-preview/text-to-video", provider="fal"),
        },
    )
    assert retired_here(spec, deployed(wan="intl"), DAY)
    assert not retired_here(spec, deployed(wan="intl", fal="fal"), DAY)


FAL = Served("fal", "fal", Route("fal-ai/x", provider="fal"))
WAN = Served("wan", "intl", Route("wan-x"))


@pytest.mark.parametrize(
    "error",
    [
        QuotaExceeded("429", upstream_status=429, retry_after=30),
        ModelGone("gone", upstream_status=404),
    ],
    ids=["quota", "gone"],
)
def test_quota_or_gone_moves_to_the_models_next_route_before_its_next_model(
    error: QuotaExceeded | ModelGone,
) -> None:
    before = running(chain=("local", "other"))
    t = p.plan(before, p.Failed(error), NOW, rules(served=FAL, next_route=True))
    assert t.job.state is JobState.QUEUED
    assert t.job.chain_index == 0  # the same model, on another route
    assert t.job.attempts[-1].outcome in (AttemptOutcome.QUOTA, AttemptOutcome.GONE)
    assert t.cancel_upstream and t.settle is None  # the hold waits for the next route
    # the route that answered is the one cooled down or marked
    where = t.cooldown.deployment if t.cooldown else t.unavailable.deployment  # type: ignore[union-attr]
    assert where == "fal:fal:fal-ai/x"
    assert t.log is not None and "NextRoute" in t.log and "via fal:fal" in t.log
    # with no route left, the chain's next model
    t = p.plan(before, p.Failed(error), NOW, rules(served=FAL, next_route=False))
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1


def test_a_last_model_with_another_route_left_is_not_failed() -> None:
    t = p.plan(running(), p.Failed(QuotaExceeded("429")), NOW, rules(served=WAN, next_route=True))
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 0


def test_a_refusal_never_moves_to_another_route() -> None:
    refusal = Refused("flagged", flagged="prompt", terminal=True)
    t = p.plan(running(), p.Failed(refusal), NOW, rules(served=FAL, next_route=True))
    assert t.job.state is JobState.FAILED and t.job.error is not None
    assert t.job.error.code == "refused" and t.settle == 0


def test_transient_errors_retry_on_the_same_route_first() -> None:
    t = p.plan(running(), p.Failed(TransientError("503")), NOW, rules(served=FAL, next_route=True))
    assert t.job.state is JobState.RUNNING and t.job.retries == 1


def test_the_create_records_which_route_it_went_to() -> None:
    queued = submitting(state=JobState.QUEUED, attempts=(), attempt_no=0, active_provider=None)
    t = p.plan(queued, p.Sending(), NOW, rules(served=FAL))
    attempt = t.job.attempts[-1]
    assert (attempt.provider, attempt.route) == ("fal", "fal")
    assert t.job.active_provider == "fal"


def test_with_a_callback_the_poll_is_only_a_safety_net() -> None:
    """One look when the model's jobs usually end (a call that beat the create's stored
    answer found nothing to wake), then only every safety interval."""
    created = submitting()
    plain = p.plan(created, p.Created("up_9"), NOW, rules())
    called = p.plan(created, p.Created("up_9"), NOW, rules(callback_wait_seconds=300.0))
    assert plain.job.next_run_at is not None and called.job.next_run_at is not None
    typical = rules().spec.typical_seconds
    assert called.job.next_run_at - NOW == typical * 1000 > plain.job.next_run_at - NOW
    still = p.plan(
        called.job,
        p.Polled(UpstreamStatus(UpstreamState.RUNNING)),
        NOW + 6_000,
        rules(callback_wait_seconds=300.0),
    )
    assert still.job.next_run_at == NOW + 6_000 + 300_000
