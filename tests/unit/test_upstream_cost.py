"""Upstream cost per job: list costs by resolution with their sources, the operator's
overrides in the config file, a provider's own figure preferred to the list, and a
refusal the provider billed kept on the failed job (a loss)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from reelgate.billing.money import CreditValue
from reelgate.catalog import load_catalog
from reelgate.catalog.routing import Served
from reelgate.engine import planner as p
from reelgate.engine.steps import _upstream_cost
from reelgate.errors import ReelgateError, Refused
from reelgate.job import JobResult, JobState, MirrorStatus
from reelgate.providers.base import ResultLocation, UpstreamState, UpstreamStatus
from tests.unit.test_planner import mirroring, rules, running
from tests.values import NOW

CATALOG = load_catalog()
CENT = CreditValue()


def _served(model: str, name: str) -> Served:
    spec = CATALOG.get(model)
    return Served(spec.provider, name, spec.route(name))


@pytest.mark.parametrize(
    ("model", "route", "resolution", "seconds", "millicredits"),
    [
        ("veo-3-1", "vertex", "720p", 8, 8 * 40_000),  # $0.40/s
        ("veo-3-1", "vertex", "1080p", 8, 8 * 40_000),
        ("veo-3-1-lite", "vertex", "720p", 8, 8 * 5_000),  # $0.05/s
        ("veo-3-1-lite", "vertex", "1080p", 8, 8 * 8_000),  # $0.08/s
        ("grok-video", "xai", "480p", 6, 6 * 5_000),  # $0.05/s
        ("grok-video", "xai", "720p", 6, 6 * 7_000),  # $0.07/s
        ("grok-video-1-5", "xai", "1080p", 10, 10 * 25_000),  # $0.25/s
        ("wan-2-1", "intl", "720p", 5, 5 * 3_600),  # $0.036/s
        ("sora-2", "compatible", "720p", 4, 4 * 10_000),  # $0.10/s
        ("veo (Audio)", "default", "1080p", 4, 4 * 150_000),  # $1.50/s, resold at cost
    ],
)
def test_list_costs_by_resolution(
    model: str, route: str, resolution: str, seconds: int, millicredits: int
) -> None:
    served = _served(model, route)
    assert served.route.cost_source, "every list cost names its source and date"
    cost = _upstream_cost(served, CENT)
    assert cost is not None
    assert cost(float(seconds), resolution) == millicredits
    # a credit worth two cents: half as many millicredits for the same dollars
    twice = _upstream_cost(served, CreditValue(per_credit=Decimal("0.02")))
    assert twice is not None and twice(float(seconds), resolution) == millicredits // 2


def test_a_route_without_a_known_cost_has_none() -> None:
    cost = _upstream_cost(_served("wan-2-1", "beijing"), CENT)
    assert cost is not None and cost(5.0, "720p") is None
    assert _upstream_cost(None, CENT) is None


def test_the_operator_sets_costs_by_resolution_in_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "reelgate.toml"
    cfg.write_text(
        '[models."grok-video".routes.xai]\n'
        "cost_per_second = 6000\n"
        'cost_by_resolution = { "480p" = 4000 }\n'
        'cost_source = "our xAI contract, 2026-12"\n'
    )
    route = load_catalog(cfg).get("grok-video").route("xai")
    assert (route.cost_for("480p"), route.cost_for("720p")) == (4000, 6000)
    assert route.cost_source == "our xAI contract, 2026-12"
    cfg.write_text('[models."grok-video".routes.xai]\ncost_by_resolution = { "480p" = -1 }\n')
    with pytest.raises(ReelgateError, match="cost_by_resolution"):
        load_catalog(cfg)


def test_the_providers_own_figure_wins_over_the_list() -> None:
    status = UpstreamStatus(
        UpstreamState.SUCCEEDED,
        result=ResultLocation(url="https://vidgen.x.ai/v.mp4"),
        duration_seconds=1.0,
        cost_usd="0.05",
    )
    result = p.finished_result(status)
    assert result is not None and result.upstream_cost_usd == "0.05"
    list_cost = lambda seconds, resolution: 999_999  # noqa: E731
    r = rules(upstream_cost=list_cost, usd_cost=CENT.millicredits_for_usd)
    job = mirroring(result=replace(result, mirror_status=MirrorStatus.STORED))
    done = p._deliver(job, job.result, NOW, r, measured=1.0, mirror_again_at=None).job
    assert done.upstream_cost == 5_000
    without = replace(job, result=replace(job.result, upstream_cost_usd=None))
    done = p._deliver(without, without.result, NOW, r, measured=1.0, mirror_again_at=None).job
    assert done.upstream_cost == 999_999


def test_a_billed_refusal_stays_on_the_failed_job_and_adds_to_a_later_delivery() -> None:
    refused = Refused("xAI's moderation withheld the generated video")
    refused.cost_usd = "0.07"
    r = rules(usd_cost=CENT.millicredits_for_usd)
    failed = p._failed(running(), refused, NOW, r).job
    assert failed.state is JobState.FAILED and failed.cost == 0  # the user pays nothing
    assert failed.upstream_cost == 7_000  # what xAI billed: a loss
    earlier = running(upstream_cost=7_000)
    result = JobResult(upstream_url="u", duration_seconds=1.0, upstream_cost_usd="0.05")
    done = p._deliver(earlier, result, NOW, r, measured=1.0, mirror_again_at=None).job
    assert done.upstream_cost == 12_000


def test_xai_ticks_are_exact_dollars() -> None:
    assert CENT.millicredits_for_usd("0.05") == 5_000
    assert CENT.millicredits_for_usd("0.00000001") == 1  # rounded up, never lost
