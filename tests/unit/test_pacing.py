"""When a running job is looked at: its model's learned time, then its provider's
progress, else a backoff; never sooner than half a second, never later than four poll
intervals, and late rather than early by up to 10 % of jitter."""

from __future__ import annotations

import pytest

from reelgate.engine.pacing import MIN_POLL_SECONDS, FinishTimes, next_poll_seconds


def wait(
    *, expected: float = 60, elapsed: float = 0, progress: int | None = None, top: bool = False
) -> float:
    return next_poll_seconds(
        expected=expected,
        elapsed=elapsed,
        progress=progress,
        interval=30,
        uniform=lambda lo, hi: hi if top else lo,
    )


def test_the_first_look_is_at_the_models_median_and_jitter_only_delays() -> None:
    assert wait() == 60
    assert wait(top=True) == pytest.approx(66)


def test_a_provider_reporting_progress_is_looked_at_when_its_pace_says_done() -> None:
    # 40 % after 60 s: 90 s to go, whatever the model's median says
    assert wait(elapsed=60, progress=40) == pytest.approx(90)
    # no progress reported yet (queued) or 0 %: the model's median decides
    assert wait(elapsed=20, progress=0) == 40


def test_a_job_past_its_median_is_looked_at_after_a_quarter_of_its_age() -> None:
    assert wait(elapsed=80) == pytest.approx(20)
    assert wait(elapsed=1.0, expected=1.0) == MIN_POLL_SECONDS


def test_waits_stay_within_half_a_second_and_four_poll_intervals() -> None:
    assert wait(expected=0.01) == MIN_POLL_SECONDS
    assert wait(expected=3_600) == 120
    assert wait(elapsed=10, progress=1) == 120


def test_the_median_is_learned_per_key_from_the_last_jobs_seen() -> None:
    times = FinishTimes(window=5)
    assert times.learned("m") is None  # nothing seen: the planner's stand-in decides
    times.observe("m", 10)
    assert times.learned("m") == 10
    times.observe("m", 0)  # not a time: ignored
    assert times.learned("m") == 10
    for seconds in (11, 12, 13, 14, 15):
        times.observe("m", seconds)
    assert times.learned("m") == 13  # the last five only
    assert times.learned("other") is None
