"""When to poll a running job: early when the provider's answer will say how far along
it is, near its model's usual time when it will not, then from the provider's own
progress, else at the model's late times and backing off.

Each worker learns, per model and route, how long its recent upstream jobs took from
create to finished (``FinishTimes``) and whether the provider's answers while a job
runs carry progress or a "poll again after" hint (``Pace.tells``). Before it has seen
a job finish, the model's poll interval (or its typical time, if shorter) stands in
(``planner.Rules.expected``). ``next_poll_seconds`` turns that into the wait before
the next look:

- a provider's hint (OpenAI's ``openai-poll-after-ms``) overrides all of this (in the
  planner, within its bounds);
- a provider that reports progress (``p`` percent after ``e`` seconds) is looked at
  again when that pace says it will be done: ``e * (100 - p) / p`` seconds on;
- the first look: for a provider that tells, at the model's early time (the 10th
  percentile of its recent jobs), since the answer then says when to look again and
  few jobs end before it; for one that does not, at its median (a look before the
  end is a wasted call, and nothing tells when to make the next);
- a job without progress that is past its first look is looked at at the model's
  median, its 90th percentile and just past its longest recent time, whichever is
  next, so a job like the recent ones costs at most three looks; past all of them,
  after a quarter of the time it has taken so far;
- every wait gets a little jitter (late, never early: a poll before the job can be
  done is wasted; at most 10 % of the wait and half a second, so it spreads jobs
  submitted together without making them late), and stays within
  [``MIN_POLL_SECONDS``, 4 x the model's poll interval].

How a look teaches the time (``engine.steps.Stepper._finished_upstream``): a provider's
call comes when the job ends, so its time is the job's; a look that finds the job done
brackets the end between itself and the look before, so the middle is learned, or the
look itself when the provider told when to make it; a job already done at its first
look teaches half of that look's time (``FIRST_LOOK_SHRINK``): an estimate too long
halves until first looks start to come early.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

__all__ = [
    "FIRST_LOOK_SHRINK",
    "MIN_POLL_SECONDS",
    "FinishTimes",
    "Pace",
    "next_poll_seconds",
]

MIN_POLL_SECONDS = 0.5
JITTER = 0.1
JITTER_MAX_SECONDS = 0.5
BACKOFF = 0.25
"""A job past every checkpoint is looked at again after this share of its age."""
LONGEST_MARGIN = 1.1
"""The last checkpoint: this much past the longest recent time."""
FIRST_LOOK_SHRINK = 0.5
"""A job done at its first look teaches half of that look's time: its end was somewhere
before it."""
WINDOW = 50


@dataclass(frozen=True)
class Pace:
    """What a model's recent jobs (on one route) say about the next one."""

    median: float
    early: float
    """The 10th percentile (nearest rank): few jobs end before it."""
    late: float
    """The 90th percentile."""
    longest: float
    tells: bool = False
    """The provider's answers while a job runs carry progress or a poll-after hint."""

    def checkpoints(self) -> tuple[float, ...]:
        return (self.median, self.late, self.longest * LONGEST_MARGIN)


def next_poll_seconds(
    *,
    pace: Pace | None,
    stand_in: float,
    elapsed: float,
    progress: int | None,
    interval: float,
    uniform: Callable[[float, float], float],
    first: bool = False,
) -> float:
    """The wait before the next poll of a job ``elapsed`` seconds into its render.
    ``pace``: what its model's recent jobs say (None: nothing learned yet, and the
    job is looked at at ``stand_in``, then backing off); ``progress``: the percent its
    provider reported (None: it reports none); ``first``: the look after the create."""
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        left = elapsed * (100 - progress) / progress
    elif pace is None:
        left = stand_in - elapsed
    elif first:
        left = (pace.early if pace.tells else pace.median) - elapsed
    else:
        ahead = [t for t in pace.checkpoints() if t - elapsed >= MIN_POLL_SECONDS]
        left = min(ahead) - elapsed if ahead else 0.0
    wait = left if left >= MIN_POLL_SECONDS else max(MIN_POLL_SECONDS, BACKOFF * elapsed)
    wait += uniform(0.0, min(JITTER * wait, JITTER_MAX_SECONDS))
    return max(MIN_POLL_SECONDS, min(wait, 4 * interval))


@dataclass
class FinishTimes:
    """Per model (and route), the upstream times of its recent finished jobs in this
    process and what they say (``Pace``), worked out when a job is seen finished
    (once per job) rather than on every step that asks."""

    window: int = WINDOW
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _pace: dict[str, Pace] = field(default_factory=dict)
    _tells: dict[str, bool] = field(default_factory=dict)

    def observe(self, model: str, seconds: float) -> None:
        if seconds <= 0:
            return
        seen = self._seen.setdefault(model, deque(maxlen=self.window))
        seen.append(seconds)
        ordered = sorted(seen)

        def rank(q: float) -> float:  # nearest rank: a time that was seen
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

        self._pace[model] = Pace(
            median=float(statistics.median(ordered)),
            early=rank(0.1),
            late=rank(0.9),
            longest=ordered[-1],
            tells=self._tells.get(model, False),
        )

    def told(self, model: str, tells: bool) -> None:
        """Whether the provider's latest answer about a running job of ``model`` carried
        progress or a poll-after hint."""
        if self._tells.get(model) == tells:
            return
        self._tells[model] = tells
        pace = self._pace.get(model)
        if pace is not None:
            self._pace[model] = replace(pace, tells=tells)

    def tells(self, model: str) -> bool:
        return self._tells.get(model, False)

    def pace(self, model: str) -> Pace | None:
        """What was learned, None before any job was seen finished."""
        return self._pace.get(model)

    def learned(self, model: str) -> float | None:
        """The median of what was seen, None before any job was."""
        pace = self._pace.get(model)
        return pace.median if pace is not None else None
