"""When a running job is looked at: early when the provider will say how far along it is,
at its model's median when it will not, then from the provider's progress, else at the
model's late times and backing off; never sooner than half a second, never later than
four poll intervals, and late rather than early by a little jitter."""

from __future__ import annotations

import pytest

from reelgate.engine.pacing import MIN_POLL_SECONDS, FinishTimes, Pace, next_poll_seconds

QUIET = Pace(median=60, early=40, late=90, longest=100)
"""A model whose provider says nothing while a job runs (fal's queue)."""
TELLING = Pace(median=60, early=40, late=90, longest=100, tells=True)
"""One whose provider reports progress or a hint (Sora)."""


def wait(
    *,
    pace: Pace | None = QUIET,
    elapsed: float = 0,
    progress: int | None = None,
    first: bool = False,
    top: bool = False,
) -> float:
    return next_poll_seconds(
        pace=pace,
        stand_in=30,
        elapsed=elapsed,
        progress=progress,
        interval=30,
        uniform=lambda lo, hi: hi if top else lo,
        first=first,
    )


def test_the_first_look_is_early_only_when_the_answer_will_say_when_to_look_again() -> None:
    assert wait(first=True) == 60  # nothing will tell: the median
    assert wait(pace=TELLING, first=True) == 40  # progress or a hint will: the 10th pct
    assert wait(pace=None, first=True) == 30  # nothing learned: the stand-in


def test_jitter_only_delays_and_never_by_more_than_half_a_second() -> None:
    assert wait(first=True, top=True) == pytest.approx(60.5)
    assert wait(pace=Pace(2, 2, 2, 2), first=True, top=True) == pytest.approx(2.2)


def test_a_provider_reporting_progress_is_looked_at_when_its_pace_says_done() -> None:
    # 40 % after 60 s: 90 s to go, whatever the model's times say
    assert wait(elapsed=60, progress=40) == pytest.approx(90)
    # no progress reported yet (queued) or 0 %: the model's checkpoints decide
    assert wait(elapsed=20, progress=0) == 40


def test_a_quiet_job_is_looked_at_at_the_median_the_90th_percentile_and_past_the_longest() -> None:
    assert wait(elapsed=60) == pytest.approx(30)  # at its median: next, the 90th percentile
    assert wait(elapsed=90) == pytest.approx(20)  # then just past the longest (110)
    assert wait(elapsed=110) == pytest.approx(27.5)  # past them all: a quarter of its age
    assert wait(pace=Pace(1, 1, 1, 1), elapsed=1.0) == MIN_POLL_SECONDS
    assert wait(pace=None, elapsed=80) == pytest.approx(20)  # nothing learned: backing off


def test_a_job_like_the_recent_ones_costs_at_most_three_looks_when_nothing_tells() -> None:
    for took in (30, 59, 60, 61, 89, 90, 95, 100, 109):
        at, looks = wait(first=True), 1
        while at < took:
            at += wait(elapsed=at)
            looks += 1
        assert looks <= 3, took


def test_waits_stay_within_half_a_second_and_four_poll_intervals() -> None:
    assert wait(pace=Pace(0.01, 0.01, 0.01, 0.01), first=True) == MIN_POLL_SECONDS
    assert wait(pace=Pace(3_600, 3_600, 3_600, 3_600), first=True) == 120
    assert wait(elapsed=10, progress=1) == 120


def test_the_pace_is_learned_per_key_from_the_last_jobs_seen() -> None:
    times = FinishTimes(window=5)
    assert times.pace("m") is None  # nothing seen: the planner's stand-in decides
    times.observe("m", 10)
    assert times.pace("m") == Pace(10, 10, 10, 10)
    times.observe("m", 0)  # not a time: ignored
    assert times.learned("m") == 10
    for seconds in (11, 15, 12, 14, 13):
        times.observe("m", seconds)
    assert times.pace("m") == Pace(median=13, early=11, late=15, longest=15)  # last five
    assert times.pace("other") is None


def test_the_early_and_late_times_are_nearest_rank_percentiles() -> None:
    times = FinishTimes()
    for seconds in range(1, 21):  # 1..20 s
        times.observe("m", float(seconds))
    pace = times.pace("m")
    assert pace is not None
    assert (pace.early, pace.median, pace.late, pace.longest) == (2, 10.5, 18, 20)


def test_whether_the_provider_tells_is_remembered_per_key_and_follows_its_answers() -> None:
    times = FinishTimes()
    times.told("m", True)  # before any job finished: kept for the first pace
    times.observe("m", 10)
    assert times.pace("m") == Pace(10, 10, 10, 10, tells=True)
    times.told("m", False)  # its answers stopped carrying progress
    assert times.pace("m") == Pace(10, 10, 10, 10, tells=False)
    assert not times.tells("other")
