"""What a step does with what it learned: ``plan(job, outcome, now, rules) -> Transition``.

Pure: no I/O, no clock, no randomness except through ``Rules.uniform``. Every
change a worker makes to a job is decided here; ``engine.steps`` gathers the
outcome (one upstream call, a mirror, a cooldown lookup) and carries out the
transition (one fenced write, with the hold settled and the events recorded in
the same transaction).

    outcome                      transition
    ───────────────────────────  ───────────────────────────────────────────────
    Stale                        clear the wake-up (a final or deleted job)
    CancelRequested              canceled, hold released (cancel upstream first)
    DeadlinePassed               failed ``timeout``, hold released (cancel upstream)
    Cooling                      the quota error ``cooldown`` (fall back or fail)
    AtCapacity                   look again in a second
    Sending                      queued → submitting with a new attempt, or the
                                 last attempt's create marked in flight again
    Created                      running; poll soon
    Polled                       progress, or mirroring with the result
    Mirrored                     completed and billed for the seconds delivered
    MirrorFailed                 retry soon; then delivered unmirrored and billed,
                                 the copy retried in the background
    Failed                       policy.decide: retry, fall back, or fail
    LookAgain                    wait (a lost create is searched for later)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from reelgate.billing import billable_seconds
from reelgate.catalog import ModelSpec
from reelgate.catalog.lifecycle import Unavailable
from reelgate.catalog.routing import Served, deployment_key
from reelgate.engine import progress as prog
from reelgate.engine.pacing import Pace, next_poll_seconds
from reelgate.engine.policy import (
    MAX_TRANSIENT_RETRIES,
    Fail,
    FallBack,
    Retry,
    backoff_seconds,
    decide,
)
from reelgate.errors import ErrorClass, ModelGone, ProviderError, QuotaExceeded, TransientError
from reelgate.job import (
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobResult,
    JobState,
    MirrorStatus,
)
from reelgate.providers.base import UpstreamState, UpstreamStatus

__all__ = [
    "CAPACITY_WAIT_MS",
    "DEFAULT_COOLDOWN_SECONDS",
    "AtCapacity",
    "CancelRequested",
    "Cooldown",
    "Cooling",
    "Created",
    "DeadlinePassed",
    "Failed",
    "ListCreate",
    "LookAgain",
    "MarkedGone",
    "MirrorFailed",
    "Mirrored",
    "Outcome",
    "Polled",
    "Rules",
    "Sending",
    "Stale",
    "StoredCopy",
    "Transition",
    "deployment",
    "plan",
]

DEFAULT_COOLDOWN_SECONDS = 60.0
"""How long a deployment is skipped after a quota answer that gave no Retry-After."""
CAPACITY_WAIT_MS = 1000
"""How soon a job waiting for a capped deployment looks again."""
MAX_MIRROR_WAIT_SECONDS = 7200.0


GONE_MARK_SECONDS = 86_400.0
"""How long a model its provider no longer serves is skipped (and shown unavailable)."""


def deployment(spec: ModelSpec, route: str | None, upstream_model: str | None = None) -> str:
    """The key of ``spec``'s own provider on ``route`` (``catalog.routing.deployment_key``),
    for ``upstream_model`` when the adapter sent another (Wan's image-to-video name)."""
    return deployment_key(spec.provider, route, upstream_model or spec.route(route).upstream_model)


# ── what the planner reads besides the job ─────────────────────────────────────


@dataclass(frozen=True)
class Rules:
    spec: ModelSpec
    """The job's current model."""
    price: Callable[[str, str, int], int]
    """(model, resolution, seconds) -> millicredits."""
    upstream_cost: Callable[[float, str], int | None] | None = None
    """(seconds the provider reported, resolution) -> what the current route costs
    upstream for them, in millicredits at the credit value; None: not known."""
    usd_cost: Callable[[str], int] | None = None
    """A provider's own cost figure (USD) in millicredits at the credit value."""
    idempotent_create: bool | None = None
    """Whether the current route's provider dedupes creates; None: not configured here."""
    served: Served | None = None
    """The route the job's current attempt is on, or the one its next create goes to
    (None: no provider of the model is configured here)."""
    next_route: bool = False
    """The model has another route here this job has not tried yet: a quota or gone
    answer (anything that falls back) moves to it before the next model of the chain."""
    gone_mark_seconds: float = GONE_MARK_SECONDS
    callback_wait_seconds: float | None = None
    """The provider calls back when the job changes (a callback URL went with the
    create): poll only as a safety net, this long apart. None: poll on the model's
    schedule."""
    mirror_quick_retries: int = 3
    mirror_background_retries: int = 6
    mirror_retry_base_seconds: float = 30.0
    uniform: Callable[[float, float], float] = field(default=random.uniform)
    """The jitter source (a test passes a fixed one)."""
    pace: Pace | None = None
    """What the model's recent upstream jobs say (``engine.pacing``); None: nothing
    learned yet."""

    @property
    def expected(self) -> float:
        """The model's learned median; with nothing learned yet, no later than its poll
        interval (a fresh worker looks as early as the catalog's schedule did)."""
        if self.pace is not None:
            return self.pace.median
        return min(self.spec.typical_seconds, self.spec.poll_interval_seconds)


# ── outcomes: what a step learned ──────────────────────────────────────────────


@dataclass(frozen=True)
class ListCreate:
    """A create to list for operators (``ambiguous_creates``), written with the step."""

    outcome: str
    note: str
    upstream_id: str | None = None


@dataclass(frozen=True)
class Stale:
    """Claimed although final or deleted."""


@dataclass(frozen=True)
class CancelRequested:
    pass


@dataclass(frozen=True)
class DeadlinePassed:
    pass


@dataclass(frozen=True)
class Cooling:
    until: int
    """When the deployment's cooldown ends."""


@dataclass(frozen=True)
class MarkedGone:
    """The current model is marked unavailable on its route (``Unavailable``)."""

    reason: str


@dataclass(frozen=True)
class AtCapacity:
    pass


@dataclass(frozen=True)
class Sending:
    """A create is about to be sent (to ``Rules.served``). ``count``: a re-send that
    counts as a retry."""

    count: bool = False


@dataclass(frozen=True)
class Created:
    upstream_id: str
    adopted: bool = False
    """Found upstream after the create's answer was lost, rather than answered."""


@dataclass(frozen=True)
class Polled:
    status: UpstreamStatus


@dataclass(frozen=True)
class Pushed:
    """The provider's verified call named the finished video (``api.provider_hooks``
    stored it on the running job): as a successful poll, without asking."""

    result: JobResult


@dataclass(frozen=True)
class StoredCopy:
    """What the mirror stored (``engine.mirror``)."""

    key: str
    bytes: int
    sha256: str
    duration_seconds: float | None
    """What the copy measures; None when it could not be measured."""
    width: int
    height: int
    content_type: str
    has_audio: bool
    poster_key: str | None = None
    sprite_key: str | None = None
    sprite_layout: dict[str, Any] | None = None
    """The poster and sprite sheet stored with it (None: they could not be made)."""


@dataclass(frozen=True)
class Mirrored:
    copy: StoredCopy


@dataclass(frozen=True)
class MirrorFailed:
    message: str
    final: bool = False
    """The copy cannot succeed by trying again (the upstream refused the download)."""


@dataclass(frozen=True)
class Failed:
    error: ProviderError
    unresolved: ListCreate | None = None
    """A create whose outcome could not be settled: never re-sent, listed for operators."""


@dataclass(frozen=True)
class LookAgain:
    at: int
    note: JobError
    count: bool = False


Outcome = (
    Stale
    | CancelRequested
    | DeadlinePassed
    | Cooling
    | MarkedGone
    | AtCapacity
    | Sending
    | Created
    | Polled
    | Pushed
    | Mirrored
    | MirrorFailed
    | Failed
    | LookAgain
)


# ── transitions: what the stepper carries out ──────────────────────────────────


@dataclass(frozen=True)
class Cooldown:
    deployment: str
    until: int
    reason: str


@dataclass(frozen=True)
class Transition:
    job: Job
    """The job after the step (the store writes the fields that changed)."""
    release: bool = True
    """Give the lease back with the write (False: the step goes on, e.g. to the create)."""
    settle: int | None = None
    """Settle the job's hold: capture this many millicredits (0 releases it all)."""
    cancel_upstream: bool = False
    """Cancel the upstream job (best effort) before writing."""
    cooldown: Cooldown | None = None
    unavailable: Unavailable | None = None
    """Mark the model unavailable on its route (its provider no longer serves it)."""
    list_create: ListCreate | None = None
    log: str | None = None


def plan(job: Job, outcome: Outcome, now: int, rules: Rules) -> Transition:
    match outcome:
        case Stale():
            return Transition(replace(job, next_run_at=None))
        case CancelRequested():
            return _canceled(job, now, rules)
        case DeadlinePassed():
            return _timed_out(job, now, rules)
        case Cooling(until=until):
            return _cooling(job, until, now, rules)
        case MarkedGone(reason=reason):
            return _marked_gone(job, reason, now, rules)
        case AtCapacity():
            wait = min(now + CAPACITY_WAIT_MS, job.deadline_at)
            return Transition(replace(job, next_run_at=wait))
        case Sending(count=count):
            return _sending(job, now, rules, count=count)
        case Created(upstream_id=upstream_id, adopted=adopted):
            return _running(job, upstream_id, now, rules, adopted=adopted)
        case Polled(status=status):
            return _polled(job, status, now, rules)
        case Pushed(result=result):
            return _finished(job, result, now)
        case Mirrored(copy=copy):
            return _mirrored(job, copy, now, rules)
        case MirrorFailed(message=message, final=final):
            return _mirror_failed(job, message, now, rules, final=final)
        case Failed(error=error, unresolved=unresolved):
            return _failed(job, error, now, rules, unresolved=unresolved)
        case LookAgain(at=at, note=note, count=count):
            last = job.last_attempt
            attempts = job.with_last_attempt(replace(last, last_error=note)) if last else ()
            return Transition(
                replace(
                    job,
                    retries=job.retries + 1 if count else job.retries,
                    attempts=attempts,
                    next_run_at=min(at, job.deadline_at),
                )
            )
    raise TypeError(f"not an outcome: {outcome!r}")


# ── the steps ──────────────────────────────────────────────────────────────────


def _create_unsettled(job: Job, rules: Rules, why: str) -> ListCreate | None:
    """A job ending (canceled, timed out) while its create may be in flight: list the
    create for operators, unless nothing can be upstream (or the provider dedupes)."""
    last = job.last_attempt
    pending = job.state is JobState.SUBMITTING and last is not None and last.create_pending
    if not pending or rules.idempotent_create:
        return None
    return ListCreate("unknown", why)


def _finish(
    job: Job,
    state: JobState,
    outcome: AttemptOutcome,
    error: JobError | None,
    now: int,
    *,
    list_create: ListCreate | None = None,
    cancel_upstream: bool = False,
    log: str | None = None,
) -> Transition:
    """A job that ends unbilled: its hold is released."""
    return Transition(
        replace(
            job,
            state=state,
            error=error,
            completed_at=now,
            units_consumed=0,
            cost=0,
            next_run_at=None,
            active_provider=None,
            attempts=job.closing_attempt(outcome, error, now),
        ),
        settle=0,
        cancel_upstream=cancel_upstream,
        list_create=list_create,
        log=log,
    )


def _canceled(job: Job, now: int, rules: Rules) -> Transition:
    why = "the job was canceled while its create's outcome was unknown"
    return _finish(
        job,
        JobState.CANCELED,
        AttemptOutcome.CANCELED,
        None,
        now,
        list_create=_create_unsettled(job, rules, why),
        cancel_upstream=job.state in (JobState.SUBMITTING, JobState.RUNNING),
    )


def _timed_out(job: Job, now: int, rules: Rules) -> Transition:
    error = JobError(
        code="timeout",
        message="The video was not ready before the job's deadline "
        f"({(job.deadline_at - job.created_at) // 1000} s). Resubmit, or try a faster model.",
    )
    why = "the job timed out while its create's outcome was unknown"
    return _finish(
        job,
        JobState.FAILED,
        AttemptOutcome.TIMEOUT,
        error,
        now,
        list_create=_create_unsettled(job, rules, why),
        cancel_upstream=True,
    )


def _skipped(job: Job, now: int, rules: Rules) -> Job:
    """The job with an attempt recording a route that was not asked."""
    served = rules.served
    attempt = Attempt(
        model=rules.spec.id,
        started_at=now,
        provider=served.kind if served else rules.spec.provider,
        route=served.name if served else None,
    )
    return replace(job, attempts=(*job.attempts, attempt))


def _cooling(job: Job, until: int, now: int, rules: Rules) -> Transition:
    """A deployment cooling down after a quota answer is not asked again until the
    cooldown ends: the job moves on down its chain (or fails with ``quota``)."""
    spec = rules.spec
    tried = _skipped(job, now, rules)
    seconds = max(1, (until - now) // 1000)
    error = QuotaExceeded(
        f"{spec.id} is cooling down for {seconds} s after a quota answer from its provider",
        code="cooldown",
    )
    return _failed(tried, error, now, rules, start_cooldown=False)


def _marked_gone(job: Job, reason: str, now: int, rules: Rules) -> Transition:
    """A model marked unavailable on its route is not asked: the job moves on down its
    chain (or fails with ``model_gone``), without marking it again."""
    spec = rules.spec
    tried = _skipped(job, now, rules)
    error = ModelGone(f"{spec.id} is marked unavailable here: {reason}")
    return _failed(tried, error, now, rules, start_cooldown=False)


def _sending(job: Job, now: int, rules: Rules, *, count: bool) -> Transition:
    """Mark a create in flight before it is sent (so a worker that dies after sending
    leaves a trace, ``engine.lost_creates``). The lease stays: the create follows."""
    if job.state is JobState.QUEUED:
        served = rules.served
        attempt = Attempt(
            model=rules.spec.id,
            started_at=now,
            create_pending=True,
            create_sent_at=now,
            provider=served.kind if served else rules.spec.provider,
            route=served.name if served else None,
        )
        return Transition(
            replace(
                job,
                state=JobState.SUBMITTING,
                active_provider=attempt.provider,
                attempt_no=job.attempt_no + 1,
                attempts=(*job.attempts, attempt),
                progress=prog.forward(job.progress, 1),
            ),
            release=False,
        )
    last = job.last_attempt
    assert last is not None, "a job in submitting has an attempt"
    again = replace(last, create_pending=True, create_sent_at=now)
    return Transition(
        replace(
            job,
            attempts=job.with_last_attempt(again),
            retries=job.retries + 1 if count else job.retries,
        ),
        release=False,
    )


def _running(job: Job, upstream_id: str, now: int, rules: Rules, *, adopted: bool) -> Transition:
    last = job.last_attempt
    assert last is not None, "a created job has an attempt"
    attempt = replace(
        last,
        upstream_id=upstream_id,
        outcome=AttemptOutcome.RUNNING,
        create_pending=False,
        adopted=last.adopted or adopted,
    )
    delay_ms = _poll_delay_ms(rules, 0)
    return Transition(
        replace(
            job,
            state=JobState.RUNNING,
            upstream_id=upstream_id,
            result=None,  # while running, only a provider's call puts one here
            running_since=now,
            poll_count=0,
            retries=0,
            attempts=job.with_last_attempt(attempt),
            progress=prog.forward(job.progress, prog.RUN_LO),
            next_run_at=min(now + delay_ms, job.deadline_at),
        )
    )


HINT_MIN_SECONDS = 0.5
HINT_MAX_SECONDS = 300.0
"""An upstream's "poll again after" is followed within these bounds."""


def _poll_delay_ms(
    rules: Rules, poll_count: int, elapsed: float = 0.0, progress: int | None = None
) -> int:
    """When to poll next (``engine.pacing``): near the model's learned time, then from
    the provider's progress or backing off; or, when the provider calls back, only as
    a safety net (a callback makes the job due at once, ``store.hooks``)."""
    spec = rules.spec
    if rules.callback_wait_seconds is not None:
        typical = rules.pace.median if rules.pace is not None else spec.typical_seconds
        if poll_count == 0:
            # One look when such a job usually ends: a call that arrived before this
            # create's answer was stored (a refusal within a second, say) found no job
            # to wake, and must not cost a whole safety interval.
            return int(max(typical, spec.poll_interval_seconds) * 1000)
        return int(max(rules.callback_wait_seconds, 2 * typical) * 1000)
    wait = next_poll_seconds(
        pace=rules.pace,
        stand_in=rules.expected,
        elapsed=elapsed,
        progress=progress,
        interval=spec.poll_interval_seconds,
        uniform=rules.uniform,
        first=poll_count == 0,
    )
    return int(wait * 1000)


def finished_result(status: UpstreamStatus) -> JobResult | None:
    """A finished upstream job's video, as the job keeps it (None: no result URL)."""
    r = status.result
    if status.state is not UpstreamState.SUCCEEDED or r is None:
        return None
    return JobResult(
        upstream_url=r.url,
        # what the upstream says it made (the mirror measures its own copy)
        duration_seconds=status.duration_seconds,
        upstream_expires_at=int(r.expires_at.timestamp() * 1000) if r.expires_at else None,
        content_type=r.content_type,
        upstream_cost_usd=status.cost_usd,
    )


def _finished(job: Job, result: JobResult, now: int) -> Transition:
    return Transition(
        replace(
            job,
            state=JobState.MIRRORING,
            result=result,
            retries=0,
            progress=prog.forward(job.progress, prog.mirroring_progress()),
            next_run_at=now,
        )
    )


def _polled(job: Job, status: UpstreamStatus, now: int, rules: Rules) -> Transition:
    spec = rules.spec
    if status.state is UpstreamState.SUCCEEDED:
        result = finished_result(status)
        if result is None:
            error = TransientError("upstream finished without a result URL")
            return _failed(job, error, now, rules)
        return _finished(job, result, now)
    elapsed = (now - (job.running_since or now)) / 1000.0
    estimate = prog.running_progress(status.progress, elapsed, spec.typical_seconds)
    if status.poll_after_seconds is not None and rules.callback_wait_seconds is None:
        # the upstream said when to ask again (with a callback, its call says it instead)
        hinted = min(max(status.poll_after_seconds, HINT_MIN_SECONDS), HINT_MAX_SECONDS)
        delay_ms = int(hinted * 1000)
    else:
        delay_ms = _poll_delay_ms(rules, job.poll_count + 1, elapsed, status.progress)
    return Transition(
        replace(
            job,
            progress=prog.forward(job.progress, estimate),
            poll_count=job.poll_count + 1,
            retries=0,
            next_run_at=min(now + delay_ms, job.deadline_at),
        )
    )


def _mirrored(job: Job, copy: StoredCopy, now: int, rules: Rules) -> Transition:
    assert job.result is not None, "a mirrored job has a result"
    result = replace(
        job.result,
        mirror_status=MirrorStatus.STORED,
        key=copy.key,
        bytes=copy.bytes,
        sha256=copy.sha256,
        # what the copy measures; result.duration_seconds stays the upstream's (for a
        # join, the new part's: what the upstream made and is paid for)
        measured_duration_seconds=copy.duration_seconds,
        width=copy.width,
        height=copy.height,
        content_type=copy.content_type,
        has_audio=copy.has_audio,
        poster_key=copy.poster_key,
        sprite_key=copy.sprite_key,
        sprite_layout=copy.sprite_layout,
        mirror_error=None,
        mirror_retry_at=None,
    )
    return _deliver(job, result, now, rules, measured=copy.duration_seconds)


def _deliver(
    job: Job,
    result: JobResult,
    now: int,
    rules: Rules,
    *,
    measured: float | None,
    mirror_again_at: int | None = None,
) -> Transition:
    """Complete the job and bill it, once. ``mirror_again_at``: the copy failed; the
    video is delivered from the upstream meanwhile and the copy is tried again then.

    Billed for what was delivered: the seconds the copy measures, else the seconds the
    provider reported, else (neither known) the seconds asked for; never more than
    asked for (the hold caps the capture too). An extension is billed for the seconds
    after its source."""
    spec = rules.spec
    already_billed = job.completed_at is not None and job.cost is not None
    upstream: int | None = None
    if already_billed:
        seconds, charge = job.units_consumed, job.cost
    else:
        reported = measured if measured is not None else result.duration_seconds
        if measured is not None and job.params.edit == "extend":
            # the copy is the whole video (joined here, or the provider's own extension):
            # what was made is what follows the source. Delivered unmirrored, the figure
            # is the new part's, or (a provider's own extension) capped at what was asked.
            reported = max(0.0, measured - (job.params.source_seconds or 0.0))
        seconds = billable_seconds(job.params.duration_seconds, reported)
        charge = rules.price(spec.id, job.params.resolution, seconds)
        upstream = _delivery_cost(job, result, rules)
    return Transition(
        replace(
            job,
            state=JobState.MIRRORING if mirror_again_at is not None else JobState.COMPLETED,
            result=result,
            progress=100,
            completed_at=job.completed_at or now,
            retries=0,
            delivered_by=job.delivered_by if already_billed else spec.id,
            attempts=job.closing_attempt(AttemptOutcome.COMPLETED, None, now),
            units_consumed=seconds,
            cost=charge,
            delivered_route=job.delivered_route if already_billed else _route_name(rules),
            upstream_cost=job.upstream_cost if already_billed else upstream,
            next_run_at=mirror_again_at,
            active_provider=None,
        ),
        settle=charge,
    )


def _delivery_cost(job: Job, result: JobResult, rules: Rules) -> int | None:
    """What the delivering route cost upstream: the provider's own figure where it gives
    one, else its list cost for the seconds it says it made (else those asked for); plus
    what earlier billed attempts of the job cost (a refusal xAI still billed)."""
    if result.upstream_cost_usd is not None and rules.usd_cost is not None:
        cost: int | None = rules.usd_cost(result.upstream_cost_usd)
    elif rules.upstream_cost is not None:
        made = result.duration_seconds or float(job.params.duration_seconds)
        if job.params.edit == "extend":
            made = min(made, float(job.params.duration_seconds))  # not the source again
        cost = rules.upstream_cost(made, job.params.resolution)
    else:
        cost = None
    if job.upstream_cost is None:
        return cost
    return job.upstream_cost + (cost or 0)


def _billed_failure(job: Job, exc: ProviderError, rules: Rules) -> Job:
    """The job with a failed attempt's cost added, where the provider billed it."""
    if exc.cost_usd is None or rules.usd_cost is None:
        return job
    cost = rules.usd_cost(exc.cost_usd)
    return replace(
        job,
        upstream_cost=(job.upstream_cost or 0) + cost,
        delivered_route=job.delivered_route or _route_name(rules),
    )


def _route_name(rules: Rules) -> str | None:
    return rules.served.name if rules.served is not None else None


def _mirror_failed(job: Job, message: str, now: int, rules: Rules, *, final: bool) -> Transition:
    """Quick retries first; then the video is delivered unmirrored (billed, playable
    through reelgate) while the copy is retried with a growing backoff, and given up
    only after ``mirror_background_retries`` more tries or once the upstream's link
    has expired."""
    assert job.result is not None, "a mirroring job has a result"
    result = replace(job.result, mirror_error=message)
    if job.completed_at is None and job.retries < rules.mirror_quick_retries and not final:
        wait = backoff_seconds(job.retries, base=2.0, uniform=rules.uniform)
        return Transition(
            replace(job, retries=job.retries + 1, result=result, next_run_at=now + int(wait * 1000))
        )
    tries = result.mirror_tries + 1
    wait_s = min(rules.mirror_retry_base_seconds * 4 ** (tries - 1), MAX_MIRROR_WAIT_SECONDS)
    again: int | None = now + int(wait_s * 1000)
    expires = result.upstream_expires_at
    log = None
    if (
        final
        or tries > rules.mirror_background_retries
        or (expires is not None and again is not None and again >= expires)
    ):
        again = None
        log = f"mirror given up after {tries} tries: {message}"
    result = replace(
        result, mirror_status=MirrorStatus.FAILED, mirror_tries=tries, mirror_retry_at=again
    )
    delivered = _deliver(job, result, now, rules, measured=None, mirror_again_at=again)
    return replace(delivered, log=log)


def _failed(
    job: Job,
    exc: ProviderError,
    now: int,
    rules: Rules,
    *,
    unresolved: ListCreate | None = None,
    start_cooldown: bool = True,
) -> Transition:
    """Apply the policy's decision to an upstream error. ``start_cooldown``: a quota
    answer cools the deployment down, and a gone answer marks the model unavailable
    (False when the error is itself the mark or the cooldown being read)."""
    cooldown = unavailable = None
    job = _billed_failure(job, exc, rules)
    served = rules.served
    where = served.key if served else deployment(rules.spec, None)
    if start_cooldown and exc.error_class is ErrorClass.QUOTA:
        pause = exc.retry_after if exc.retry_after is not None else DEFAULT_COOLDOWN_SECONDS
        cooldown = Cooldown(where, now + int(pause * 1000), exc.message)
    if start_cooldown and exc.marks_unavailable:
        until = now + int(rules.gone_mark_seconds * 1000)
        sent = exc.details.get("upstream_model")
        gone_where = (
            deployment_key(served.kind, served.name, sent)
            if served is not None and isinstance(sent, str)
            else where
        )
        # shown to every account in /v1/models: the provider's words stay in the job's
        # own attempt and the log (they may name the operator's project)
        status = f"HTTP {exc.upstream_status} " if exc.upstream_status else ""
        public = f"its provider answered {status}{exc.code}: the model is not served there"
        unavailable = Unavailable(gone_where, rules.spec.id, public, now, until)
    has_next = job.chain_index + 1 < len(job.chain) or rules.next_route
    # An upstream job that itself ended failed cannot succeed on another poll:
    # skip the retries of this step and go straight to the fallback (or fail).
    terminal = job.state is JobState.RUNNING and exc.terminal
    decision = decide(
        exc,
        retries=MAX_TRANSIENT_RETRIES if terminal else job.retries,
        has_next=has_next,
        model=job.current_model,
        may_duplicate=unresolved is not None,
        # only the native API takes a fallback list (not the media-video-from-text one)
        suggest_fallback=job.source == "native",
        uniform=rules.uniform,
    )
    outcome = (
        AttemptOutcome.AMBIGUOUS
        if unresolved is not None
        else AttemptOutcome(exc.error_class.value)
    )
    error = JobError(
        code=exc.code,
        message=exc.message,
        error_class=exc.error_class.value,
        upstream_status=exc.upstream_status,
    )
    on = f"{job.current_model} via {served.kind}:{served.name}" if served else job.current_model
    step = "NextRoute" if isinstance(decision, FallBack) and rules.next_route else None
    log = f"{exc.error_class.value} on {on} -> {step or type(decision).__name__}"
    if unavailable is not None:
        log += f"; marked unavailable: {exc.message}"
    if isinstance(decision, Retry):
        last = job.last_attempt
        attempts = job.attempts
        if last is not None:
            # a definite answer to a create: nothing is in flight any more
            pending = last.create_pending and job.state is not JobState.SUBMITTING
            attempts = job.with_last_attempt(
                replace(last, last_error=error, create_pending=pending)
            )
        return Transition(
            replace(
                job,
                retries=job.retries + 1,
                attempts=attempts,
                next_run_at=min(now + int(decision.delay_seconds * 1000), job.deadline_at),
            ),
            cooldown=cooldown,
            unavailable=unavailable,
            log=log,
        )
    if isinstance(decision, FallBack):
        return Transition(
            replace(
                job,
                state=JobState.QUEUED,
                active_provider=None,
                # another route of the same model first, then the chain's next model
                chain_index=job.chain_index if rules.next_route else job.chain_index + 1,
                upstream_id=None,
                running_since=None,
                poll_count=0,
                retries=0,
                attempts=job.closing_attempt(outcome, error, now),
                next_run_at=now,
            ),
            cancel_upstream=job.state is JobState.RUNNING,
            cooldown=cooldown,
            unavailable=unavailable,
            list_create=unresolved,
            log=log,
        )
    assert isinstance(decision, Fail)
    failed = _finish(
        job,
        JobState.FAILED,
        outcome,
        JobError(code=decision.code, message=decision.message),
        now,
        list_create=unresolved,
        log=log,
    )
    # the attempt keeps the upstream's own error; the job shows the decision's
    closed = job.closing_attempt(outcome, error, now)
    return replace(
        failed,
        job=replace(failed.job, attempts=closed),
        cooldown=cooldown,
        unavailable=unavailable,
    )
