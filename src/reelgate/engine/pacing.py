"""When to poll a running job: near the time its model's jobs have been taking, then
from the provider's own progress, else backing off with jitter.

Each worker learns, per model and route, how long its recent upstream jobs took from
create to finished (``FinishTimes``); before it has seen one, the model's poll interval
(or its typical time, if shorter) stands in (``planner.Rules.expected``). A poll only
brackets a job's end, so the Stepper learns the middle of the bracket, and half the
look's time for a job already done at its first look.
``next_poll_seconds`` turns that into the wait before the next look:

- a provider's hint (OpenAI's ``openai-poll-after-ms``) overrides all of this (in the
  planner, within its bounds);
- a provider that reports progress (``p`` percent after ``e`` seconds) is looked at
  again when that pace says it will be done: ``e * (100 - p) / p`` seconds on;
- otherwise the first look is at the model's median, and a job that outlasts it is
  looked at again after a quarter of the time it has taken so far;
- every wait gets up to 10 % of jitter (late, never early: a poll before the job can
  be done is wasted), so jobs submitted together do not poll together, and stays
  within [``MIN_POLL_SECONDS``, 4 x the model's poll interval].
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FIRST_LOOK_SHRINK", "MIN_POLL_SECONDS", "FinishTimes", "next_poll_seconds"]

MIN_POLL_SECONDS = 0.5
JITTER = 0.1
BACKOFF = 0.25
"""A job past its model's median is looked at again after this share of its age."""
FIRST_LOOK_SHRINK = 0.5
"""A job done at its first look teaches half of that look's time (``Stepper``): its end
was somewhere before it. An estimate that is too long halves until first looks start to
come early; the ends they then bracket hold it near the truth."""
WINDOW = 50


def next_poll_seconds(
    *,
    expected: float,
    elapsed: float,
    progress: int | None,
    interval: float,
    uniform: Callable[[float, float], float],
) -> float:
    """The wait before the next poll of a job ``elapsed`` seconds into its render, whose
    model's jobs take ``expected`` seconds (median) and whose provider reported
    ``progress`` percent (None: it reports none)."""
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        left = elapsed * (100 - progress) / progress
    else:
        left = expected - elapsed
    wait = left if left >= MIN_POLL_SECONDS else max(MIN_POLL_SECONDS, BACKOFF * elapsed)
    wait *= uniform(1.0, 1.0 + JITTER)
    return max(MIN_POLL_SECONDS, min(wait, 4 * interval))


@dataclass
class FinishTimes:
    """Per model (and route), the upstream times of its recent finished jobs in this
    process, and their median, worked out when a job is seen finished (once per job)
    rather than on every step that asks."""

    window: int = WINDOW
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _median: dict[str, float] = field(default_factory=dict)

    def observe(self, model: str, seconds: float) -> None:
        if seconds > 0:
            seen = self._seen.setdefault(model, deque(maxlen=self.window))
            seen.append(seconds)
            self._median[model] = float(statistics.median(seen))

    def learned(self, model: str) -> float | None:
        """The median of what was seen, None before any job was."""
        return self._median.get(model)
