"""One step of one job: gather an outcome, let the planner decide, carry it out.

    queued ──▶ submitting ──▶ running ──▶ mirroring ──▶ completed
       └───────────┴─────────────┴────────────┴──▶ failed | canceled

Each step reads the job as claimed, does at most one piece of upstream I/O,
and hands what it learned to ``engine.planner.plan``, which returns the job's
next value and what goes with it (a hold to settle, a cooldown, a create to
list for operators). The stepper writes that with a fenced write
(``store.jobs.write_step``) that also sets the next wake-up and releases the
lease. The only write before upstream I/O is the move to ``submitting``: it
fixes the attempt number, and so the idempotency key, before the create call,
so a worker that dies after the create is replaced by one that re-sends the
*same* create (or looks for it, ``engine.lost_creates``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, TypeVar

from reelgate import metrics
from reelgate.billing import charge_for
from reelgate.billing.money import DEFAULT_CREDIT_VALUE, CreditValue
from reelgate.catalog import Catalog, ModelSpec
from reelgate.catalog.lifecycle import Unavailable, today
from reelgate.catalog.models import Route
from reelgate.catalog.routing import Served, served_routes
from reelgate.catalog.synced.check import native_input
from reelgate.catalog.synced.store import CHECK_SECONDS, refresh
from reelgate.config import Settings
from reelgate.engine.callbacks import callback_url
from reelgate.engine.edits import joins_source, source_for
from reelgate.engine.events import EventHub, event_for
from reelgate.engine.inputs import load_image
from reelgate.engine.lost_creates import record_create, settle_lost_create
from reelgate.engine.mirror import mirror_result
from reelgate.engine.pacing import FIRST_LOOK_SHRINK, FinishTimes
from reelgate.engine.planner import (
    AtCapacity,
    CancelRequested,
    Cooling,
    Created,
    DeadlinePassed,
    Failed,
    ListCreate,
    LookAgain,
    MarkedGone,
    Mirrored,
    MirrorFailed,
    Outcome,
    Polled,
    Pushed,
    Rules,
    Sending,
    Stale,
    Transition,
    plan,
)
from reelgate.engine.policy import Uniform
from reelgate.errors import (
    InvalidRequest,
    ProviderError,
    ReelgateError,
    StorageError,
    TransientError,
)
from reelgate.job import Job, JobError, JobState
from reelgate.providers.base import (
    UPLOADED,
    GenerationRequest,
    ImageInput,
    Provider,
    ReceivesWebhooks,
    ResultLocation,
    SourceVideo,
    TakesOutputUpload,
    UpstreamState,
)
from reelgate.providers.registry import ProviderRegistry
from reelgate.storage import Storage
from reelgate.storage.keys import preview_keys, storage_key, upload_key
from reelgate.store.base import Store, Tx
from reelgate.store.db import is_unavailable
from reelgate.store.jobs import now_ms
from reelgate.store.recent import Recent
from reelgate.store.step import StepWrite, record_step_in

if TYPE_CHECKING:
    from reelgate.runtime import Runtime

__all__ = ["Also", "Stepper", "storage_key"]

Also = Callable[[Tx], Awaitable[None]]
"""More writes that must commit with a step's own (same transaction)."""

log = logging.getLogger(__name__)
T = TypeVar("T")


UPLOAD_URL_MARGIN_SECONDS = 600
BLOCKED_TTL_SECONDS = 1.0
"""How long a worker reuses its read of the cooldowns and gone-model marks: another
worker's quota answer or an operator's lifted mark is seen within this time."""


class _Unloaded:
    """``send_create``'s image argument when the image is still to be loaded."""


UNLOADED = _Unloaded()


class Stepper:
    """Advances one job by one step. It receives what it uses: the store, the catalog,
    the providers, the object storage, the settings it reads, the in-process event hub
    (SSE streams) and the clock."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        providers: ProviderRegistry,
        storage: Storage,
        settings: Settings,
        hub: EventHub,
        worker_id: str,
        clock: Callable[[], int] = now_ms,
        uniform: Uniform = random.uniform,
        hook_secret: bytes | None = None,
        on_unavailable: Callable[[], None] | None = None,
        refresh_catalog: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.providers = providers
        self.storage = storage
        self.settings = settings
        self.credit = settings.credit()
        self.hub = hub
        self.worker_id = worker_id
        self.clock = clock
        self.uniform = uniform
        self.hook_secret = hook_secret
        """Signs per-job callback URLs (None: providers are polled only)."""
        self.on_unavailable = on_unavailable
        """Told when a model is marked gone (the API in this process forgets its copy)."""
        self.refresh_catalog = refresh_catalog
        """Reloads the synced models when their table changed, at most every ``max_age``
        seconds (``catalog.synced.store.refresh``): a sync reaches running workers."""
        self.finish_times = FinishTimes()
        """Per model and route, how long its upstream jobs took (``engine.pacing``)."""
        self._routes: dict[str, tuple[ModelSpec, list[Served]]] = {}
        self._blocked: Recent[str, tuple[list[Unavailable], dict[str, int]]] = Recent(
            ttl=BLOCKED_TTL_SECONDS
        )

    @classmethod
    def from_runtime(
        cls, rt: Runtime, worker_id: str, *, clock: Callable[[], int] = now_ms
    ) -> Stepper:
        return cls(
            store=rt.store,
            catalog=rt.catalog,
            providers=rt.providers,
            storage=rt.storage,
            settings=rt.settings,
            hub=rt.events,
            worker_id=worker_id,
            clock=clock,
            hook_secret=rt.signing_secret,
            on_unavailable=rt.gone.forget_all,
            refresh_catalog=lambda max_age: refresh(rt.catalog, rt.db, max_age=max_age),
        )

    # ── carrying out a transition ──────────────────────────────────────────────

    def spec(self, job: Job) -> ModelSpec:
        return self.catalog.get(job.current_model)

    def routes(self, spec: ModelSpec) -> list[Served]:
        """The routes serving ``spec`` here, best first (``catalog.routing``). Asked on
        every step and fixed for a spec (providers and priorities are set at start), so
        worked out once per spec object."""
        known = self._routes.get(spec.id)
        if known is None or known[0] is not spec:
            known = (
                spec,
                served_routes(spec, self.providers.route_of, self.settings.provider_priority),
            )
            self._routes[spec.id] = known
        return known[1]

    def current_route(self, job: Job) -> Served | None:
        """The route of the job's current attempt (None while queued: the next create
        picks one). An attempt from before routes were recorded is on the model's own
        provider."""
        spec = self.spec(job)
        last = job.last_attempt
        if job.state is JobState.QUEUED or last is None or last.model != spec.id:
            return None
        kind = last.provider or spec.provider
        name = last.route or self.providers.route_of(kind)
        for served in self.routes(spec):
            if served.kind == kind and (name is None or served.name == name):
                return served
        # the deployment changed since (the operator moved it): still the same upstream
        listed = spec.routes.get(name) if name is not None else None
        route = listed if listed is not None and kind != spec.provider else spec.route(name)
        return Served(kind, name or "-", route if route.provider in (None, kind) else Route(""))

    def _tried(self, job: Job, spec: ModelSpec) -> set[tuple[str, str | None]]:
        """The routes of ``spec`` this job has closed an attempt on (or skipped)."""
        return {
            (a.provider or spec.provider, a.route)
            for a in job.attempts
            if a.model == spec.id and a.ended_at is not None
        }

    def _has_next_route(self, job: Job, spec: ModelSpec, current: Served | None) -> bool:
        tried = self._tried(job, spec)
        if current is not None:
            tried.add((current.kind, current.name))
        return any((s.kind, s.name) not in tried for s in self.routes(spec))

    def rules(
        self, job: Job, served: Served | None = None, *, next_route: bool | None = None
    ) -> Rules:
        """What the planner reads for ``job``. ``served``: the route of its next create
        (default: its current attempt's). ``next_route``: whether a failure may move to
        another route of the model (default: when one is left untried)."""
        spec = self.spec(job)
        served = served if served is not None else self.current_route(job)
        if next_route is None:
            next_route = self._has_next_route(job, spec, served)
        provider = self.providers.get(served.kind) if served is not None else None
        settings = self.settings
        catalog = self.catalog
        return Rules(
            spec=spec,
            price=lambda model, resolution, seconds: charge_for(
                catalog,
                model,
                resolution,
                seconds,
                audio=job.params.audio,
                provider_params=job.params.provider_params,
            ),
            upstream_cost=_upstream_cost(served, self.credit),
            usd_cost=self.credit.millicredits_for_usd,
            idempotent_create=provider.idempotent_create if provider is not None else None,
            served=served,
            next_route=next_route,
            callback_wait_seconds=(
                settings.webhook_safety_poll_seconds if self._calls_back(served) else None
            ),
            gone_mark_seconds=settings.model_gone_mark_seconds,
            mirror_quick_retries=settings.mirror_quick_retries,
            mirror_background_retries=settings.mirror_background_retries,
            mirror_retry_base_seconds=settings.mirror_retry_base_seconds,
            uniform=self.uniform,
            pace=self.finish_times.pace(_pace_key(spec, served)),
        )

    def _finished_upstream(self, job: Job, *, pushed: bool = False) -> None:
        """Learn how long this job's upstream took (a poll or a call just said done).

        A provider's call comes when the job ends: its time is the job's. A poll only
        brackets the end: after the previous look (``updated_at``, written with it), at
        or before this one, so the middle is learned; where the provider told when to
        look (progress or a hint), this look was made for the end, and its time is
        learned. A job already done at its first look says only that the model's time
        was overestimated: half of that look is learned (``FIRST_LOOK_SHRINK``), so an
        estimate that is too long halves until first looks start to come early, and
        the bracketed ends then hold it near."""
        if job.running_since is None:
            return
        seen = (self.clock() - job.running_since) / 1000
        key = _pace_key(self.spec(job), self.current_route(job))
        if pushed:
            took = seen
        elif job.poll_count == 0:
            took = FIRST_LOOK_SHRINK * seen
        elif self.finish_times.tells(key):
            took = seen
        else:
            before = max(0.0, (job.updated_at - job.running_since) / 1000)
            took = (before + seen) / 2
        self.finish_times.observe(key, took)

    def plan(self, job: Job, outcome: Outcome, rules: Rules | None = None) -> Transition:
        return plan(job, outcome, self.clock(), rules or self.rules(job))

    async def take(
        self, job: Job, outcome: Outcome, *, also: Also | None = None, rules: Rules | None = None
    ) -> Job | None:
        """Plan the outcome and carry the transition out (None: the lease was lost)."""
        return await self.apply(job, self.plan(job, outcome, rules), also=also)

    async def apply(self, job: Job, t: Transition, *, also: Also | None = None) -> Job | None:
        """Carry out a transition: upstream cancel and cooldown first (best effort),
        then one transaction with the fenced write, its event, the hold's settlement,
        the operators' record and ``also``. Returns the job as written, or None when
        the lease was lost (then nothing was written)."""
        if t.log:
            log.info("job %s: %s", job.id, t.log)
        if t.cancel_upstream:
            await self._cancel_upstream(job)
        if t.cooldown is not None:
            c = t.cooldown
            await self.store.start_cooldown(c.deployment, c.until, c.reason, self.clock())
            self._blocked.forget_all()
        if t.unavailable is not None:
            await self.store.mark_unavailable(t.unavailable)
            self._blocked.forget_all()
            if self.on_unavailable is not None:
                self.on_unavailable()
        step = self._step_write(job, t.job, release=t.release, settle=t.settle)
        extras = [more for more in (self._listing(job, t.list_create), also) if more]
        written = await self._patiently(job, lambda: self._record(step, extras))
        if written is not None:
            self.hub.notify(job.id)
            metrics.job_changed(job, written)
            if written.state is not job.state:
                log.info(
                    "job %s: %s -> %s%s",
                    job.id,
                    job.state.value,
                    written.state.value,
                    f" ({written.active_provider})" if written.active_provider else "",
                )
        else:
            log.warning(
                "job %s: lease lost before writing %s; another worker has it", job.id, job.state
            )
        return written

    async def _record(self, step: StepWrite, extras: Sequence[Also] = ()) -> Job | None:
        """Write ``step`` (None: the lease was lost and nothing was written). Alone it is
        one call to the database; with ``extras`` (writes that must commit with it) a
        transaction of its statements and theirs."""
        if not extras:
            return step.after if await self.store.record_step(step) else None
        async with self.store.begin() as tx:
            if not await record_step_in(tx, step):
                return None
            for more in extras:
                await more(tx)
        return step.after

    def _listing(self, job: Job, lc: ListCreate | None) -> Also | None:
        """The operators' record of a create a transition lists (None: it lists none)."""
        if lc is None:
            return None
        spec = self.spec(job)
        return record_create(job, spec, lc.outcome, lc.note, lc.upstream_id, self.clock())

    def _step_write(
        self, before: Job, after: Job, *, release: bool, settle: int | None = None
    ) -> StepWrite:
        """The write that records a step: ``after`` with the event the change makes."""
        event = event_for(before, after)
        if event is not None:
            after = replace(after, event_seq=before.event_seq + 1)
        return StepWrite(before, after, self.worker_id, release, event, settle, self.clock())

    async def _patiently(self, job: Job, write: Callable[[], Awaitable[T]]) -> T:
        """Run a step's write, riding out a database outage: what the step learned
        upstream (an upstream id above all) must not be lost to a blip. Safe to repeat:
        the fence lets a write through only while this worker holds the job."""
        delay = 0.5
        deadline = time.monotonic() + self.settings.database_timeout_seconds * 8
        while True:
            try:
                return await write()
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "job %s: database unavailable while recording its %s step; retrying in %.1fs",
                    job.id,
                    job.state,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # ── the steps ──────────────────────────────────────────────────────────────

    async def advance(self, job: Job) -> None:
        if self.refresh_catalog is not None:
            missing = any(m not in self.catalog for m in job.chain)
            await self.refresh_catalog(0.0 if missing else CHECK_SECONDS)
        now = self.clock()
        if job.is_final or job.deleted_at is not None:
            await self.take(job, Stale())
        elif job.cancel_requested and job.completed_at is None:
            await self.take(job, CancelRequested())
        elif now >= job.deadline_at and job.state is not JobState.MIRRORING:
            await self.take(job, DeadlinePassed())
        elif job.state in (JobState.QUEUED, JobState.SUBMITTING):
            await self._submit(job)
        elif job.state is JobState.RUNNING:
            await self._poll(job)
        else:
            await self._mirror(job)

    async def _cancel_upstream(self, job: Job) -> None:
        served = self.current_route(job)
        provider = self.providers.get(served.kind) if served is not None else None
        if provider is None or not provider.supports_cancel or not job.upstream_id:
            return
        try:
            with metrics.upstream_call(provider.name, "cancel"):
                await provider.cancel(job.upstream_id)
        except ReelgateError as exc:
            log.info("job %s: upstream cancel failed (%s); ignoring", job.id, exc.code)

    def kind_of(self, job: Job) -> str:
        """The provider kind of the job's current attempt (the model's own, queued)."""
        served = self.current_route(job)
        return served.kind if served is not None else self.spec(job).provider

    def provider(self, job: Job) -> Provider:
        """The deployment the job's current attempt is on."""
        kind = self.kind_of(job)
        provider = self.providers.get(kind)
        if provider is None:
            reason = self.providers.unavailable_reason(kind) or kind
            raise TransientError(reason, code="provider_unavailable")
        return provider

    async def _take_slot(self, job: Job, served: Served, sending: Transition) -> Job | None:
        """Move to ``submitting`` only if the deployment has a free slot (its
        ``provider_max_concurrent`` cap), atomically: the count and the write share one
        transaction, serialised per provider. None: at capacity (the job looks again
        shortly) or the lease was lost."""
        limit = self.settings.provider_max_concurrent.get(served.kind)
        step = self._step_write(job, sending.job, release=False)
        if not limit:
            written = await self._record(step)
        else:
            async with self.store.begin() as tx:
                await tx.lock_provider(served.kind)
                if await tx.count_occupying(served.kind, job.id) >= limit:
                    wait = self.plan(job, AtCapacity())
                    await record_step_in(tx, self._step_write(job, wait.job, release=True))
                    return None
                written = step.after if await record_step_in(tx, step) else None
        if written is not None:
            self.hub.notify(job.id)
            metrics.job_changed(job, written)
        return written

    async def _submit(self, job: Job) -> None:
        spec = self.spec(job)
        last = job.last_attempt
        if job.state is JobState.SUBMITTING and (last is None or last.create_pending):
            # Claimed in `submitting` while a create may be in flight: the worker that
            # sent it died before recording the answer. Whatever failed before that
            # create, this one may have started an upstream job.
            lost = TransientError("the worker stopped while a create was in flight")
            await settle_lost_create(self, job, spec, lost)
            return
        chosen: Served | None = None
        if job.state is JobState.QUEUED:
            picked = await self._pick_route(job, spec)
            if isinstance(picked, tuple):
                blocked, outcome = picked
                # no healthy route left: the model is skipped down the chain
                await self.take(job, outcome, rules=self.rules(job, blocked, next_route=False))
                return
            chosen = picked
        # The input image is fetched before the create is marked in flight, so the
        # marked time is when the create went out (a lost create is looked for by it).
        try:
            image = await load_image(job.params, self.storage, self.settings.net_policy())
        except ProviderError as exc:
            await self.on_error(job, exc)
            return
        if job.state is JobState.QUEUED:
            if chosen is None:  # no provider of the model is configured here
                await self.on_error(job, self._no_provider(spec))
                return
            sending = self.plan(job, Sending(), self.rules(job, chosen))
            marked = await self._take_slot(job, chosen, sending)
        else:
            # A retry after a definite answer (a 5xx, say): mark it in flight, then send.
            marked = await self.mark_sending(job)
        if marked is not None:
            await self.send_create(marked, spec, image)

    def _no_provider(self, spec: ModelSpec) -> TransientError:
        reason = self.providers.unavailable_reason(spec.provider) or spec.provider
        return TransientError(reason, code="provider_unavailable")

    async def _pick_route(
        self, job: Job, spec: ModelSpec
    ) -> Served | tuple[Served, Cooling | MarkedGone] | None:
        """The route for the job's next create: the best one this job has not tried that
        is not retired, marked gone or cooling down. When every one left is, the first of
        them with why it was skipped; None when no provider of the model is set up."""
        now = self.clock()
        tried = self._tried(job, spec)
        left = [s for s in self.routes(spec) if (s.kind, s.name) not in tried]
        if not left:
            return None
        day = today(now)
        all_marks, all_cooling = await self._blocked.get("all", self._read_blocked)
        marks = {m.deployment: m for m in all_marks if m.until > now}
        cooling = {d: until for d, until in all_cooling.items() if until > now}
        blocked: tuple[Served, Cooling | MarkedGone] | None = None
        for served in left:
            why: Cooling | MarkedGone | None = None
            r = served.route
            if served.retired_on(day):
                since = f" on {r.retires_at.isoformat()}" if r.retires_at else ""
                after = f"; its successor is {spec.successor}" if spec.successor else ""
                why = MarkedGone(f"retired on its {served.name} route{since}{after}")
            elif (mark := marks.get(served.key)) is not None:
                why = MarkedGone(mark.reason)
            elif (until := cooling.get(served.key)) is not None:
                why = Cooling(until)
            if why is None:
                return served
            blocked = blocked or (served, why)
        assert blocked is not None
        return blocked

    async def _read_blocked(self) -> tuple[list[Unavailable], dict[str, int]]:
        """Every deployment marked gone or cooling down now (kept ``BLOCKED_TTL_SECONDS``:
        each create asks, a change is rare, and this process forgets at once what it
        changes itself)."""
        now = self.clock()
        return await self.store.list_unavailable(now), await self.store.list_cooling(now)

    async def mark_sending(self, job: Job, *, count: bool = False) -> Job | None:
        """Record that a create is about to be sent (None: the lease was lost).
        ``count``: this send is a retry that counts against the transient limit."""
        return await self.take(job, Sending(count=count))

    def _request(
        self,
        job: Job,
        spec: ModelSpec,
        image: ImageInput | None,
        upload_url: str | None = None,
        source: SourceVideo | None = None,
    ) -> GenerationRequest:
        p = job.params
        served = self.current_route(job)
        upstream = served.upstream_model if served is not None else spec.upstream_model
        native = native_input(spec, job.prompt, p, has_image=image is not None)
        return GenerationRequest(
            job_id=job.id,
            attempt=job.attempt_no,
            model=spec.id,
            upstream_model=upstream,
            prompt=job.prompt,
            duration_seconds=p.duration_seconds,
            resolution=p.resolution,
            aspect_ratio=p.aspect_ratio,
            width=p.width,
            height=p.height,
            negative_prompt=p.negative_prompt,
            seed=p.seed,
            image=None if source is not None else image,
            output_upload_url=upload_url,
            source=source,
            callback_url=self._callback_url(job, served),
            native_input=native,
            native_image_field=spec.synced.mapping.image if spec.synced else None,
        )

    def _calls_back(self, served: Served | None) -> bool:
        """The route's provider will call when the job ends: with a per-job URL the
        create carries, or at the endpoint the operator registered with it."""
        provider = self._hooked(served)
        if provider is None:
            return False
        return not provider.per_job_callbacks or self.hook_secret is not None

    def _hooked(self, served: Served | None) -> ReceivesWebhooks | None:
        settings = self.settings
        if served is None or not (settings.inbound_webhooks and settings.public_url):
            return None
        provider = self.providers.get(served.kind)
        if isinstance(provider, ReceivesWebhooks) and provider.receives_webhooks:
            return provider
        return None

    def _callback_url(self, job: Job, served: Served | None) -> str | None:
        """The job's callback URL for a provider that calls back per job, when the
        gateway has a public address to give (None: none goes with the create)."""
        provider = self._hooked(served)
        if served is None or provider is None or not provider.per_job_callbacks:
            return None
        if self.hook_secret is None:
            return None
        settings = self.settings
        now = self.clock()
        return callback_url(
            settings.public_url,
            served.kind,
            job.id,
            self.hook_secret,
            lifetime_seconds=max(0, (job.deadline_at - now) // 1000),
            now=now / 1000,
        )

    async def generation_request(self, job: Job, spec: ModelSpec) -> GenerationRequest:
        image = await load_image(job.params, self.storage, self.settings.net_policy())
        source = await self._edit_source(job, spec)
        return self._request(job, spec, image, await self._upload_url(job, spec), source)

    async def _upload_url(self, job: Job, spec: ModelSpec) -> str | None:
        """A PUT link into our storage for providers that take one, good until the job's
        deadline (plus a margin): the provider writes the video there itself."""
        provider = self.providers.get(self.kind_of(job))
        if not (isinstance(provider, TakesOutputUpload) and provider.takes_output_upload):
            return None
        lifetime = max(0, (job.deadline_at - self.clock()) // 1000) + UPLOAD_URL_MARGIN_SECONDS
        try:
            return await self.storage.upload_url(upload_key(job), lifetime)
        except StorageError as exc:
            # e.g. cloud credentials that cannot sign: the create goes without a link
            log.warning("job %s: no upload link could be signed (%s)", job.id, exc.code)
            return None

    async def send_create(
        self, job: Job, spec: ModelSpec, image: ImageInput | _Unloaded | None = UNLOADED
    ) -> None:
        """Send the create. ``image``: already loaded before the create was marked in
        flight (so the marked send time is the real one); loaded here otherwise."""
        try:
            provider = self.provider(job)
            if isinstance(image, _Unloaded):
                request = await self.generation_request(job, spec)
            else:
                source = await self._edit_source(job, spec)
                upload = await self._upload_url(job, spec)
                request = self._request(job, spec, image, upload, source)
            with metrics.upstream_call(provider.name, "create"):
                submitted = await provider.create(request)
        except ProviderError as exc:
            if exc.ambiguous:
                # sent, but the answer was lost: the upstream job may exist
                await settle_lost_create(self, job, spec, exc)
            else:
                await self.on_error(job, exc)
            return
        await self.record_running(job, spec, submitted.upstream_id)

    async def record_running(
        self,
        job: Job,
        spec: ModelSpec,
        upstream_id: str,
        *,
        adopted: bool = False,
        also: Also | None = None,
    ) -> None:
        written = await self.take(job, Created(upstream_id, adopted=adopted), also=also)
        if written is None and not adopted:
            # Another worker has the job now and cannot know this upstream job exists.
            note = "created upstream, but the job's lease was lost before the id was recorded"
            async with self.store.begin() as tx:
                await record_create(job, spec, "untracked", note, upstream_id, self.clock())(tx)

    async def wait_then_retry(
        self, job: Job, until_ms: int, note: JobError, *, count: bool
    ) -> None:
        """Look at the job again at ``until_ms`` (the create stays marked in flight)."""
        await self.take(job, LookAgain(until_ms, note, count=count))

    async def _poll(self, job: Job) -> None:
        assert job.upstream_id is not None
        if job.result is not None:
            # the provider's signed call named the finished video (api.provider_hooks)
            self._finished_upstream(job, pushed=True)
            await self.take(job, Pushed(job.result))
            return
        try:
            provider = self.provider(job)
            with metrics.upstream_call(provider.name, "status"):
                status = await provider.status(job.upstream_id)
        except ProviderError as exc:
            await self.on_error(job, exc)
            return
        if status.state is UpstreamState.SUCCEEDED:
            self._finished_upstream(job)
        else:  # pending or running: does the answer say how far along it is?
            key = _pace_key(self.spec(job), self.current_route(job))
            tells = status.progress is not None or status.poll_after_seconds is not None
            self.finish_times.told(key, tells)
        await self.take(job, Polled(status))

    async def _mirror(self, job: Job) -> None:
        assert job.result is not None, "a mirroring job has a result"
        location = ResultLocation(
            url=job.result.upstream_url, content_type=job.result.content_type or "video/mp4"
        )
        outcome: Outcome
        started = time.monotonic()
        try:
            source = (
                self.storage.stream(upload_key(job))
                if location.url.startswith(UPLOADED)
                else self.provider(job).download(location)
            )
            copy = await mirror_result(
                source,
                self.storage,
                storage_key(job),
                max_bytes=self.settings.mirror_max_bytes,
                preview_keys=preview_keys(job) if self.settings.previews else None,
                join_after=self._joined_onto(job),
            )
        except StorageError as exc:
            if location.url.startswith(UPLOADED) and exc.code == "object_not_found":
                # the provider said it wrote the video to us, and it is not there: a
                # provider failure (retried, then the fallback), never a delivery
                missing = TransientError(
                    "the provider reported the video uploaded, but it is not in storage",
                    code="upload_missing",
                )
                await self.on_error(job, missing)
                return
            outcome = MirrorFailed(exc.message, final=False)
        except (ReelgateError, OSError) as exc:
            message = exc.message if isinstance(exc, ReelgateError) else type(exc).__name__
            outcome = MirrorFailed(message, final=isinstance(exc, InvalidRequest))
        else:
            outcome = Mirrored(copy)
        took = time.monotonic() - started
        if isinstance(outcome, Mirrored):
            metrics.mirror_done("stored", took, copy.bytes)
        else:
            metrics.mirror_done("failed", took)
        await self.take(job, outcome)

    async def _edit_source(self, job: Job, spec: ModelSpec) -> SourceVideo | None:
        """An extend's or remix's source, for a route that edits natively (``engine.edits``);
        nothing is looked up for an ordinary job."""
        if job.params.edit is None:
            return None
        upstream = self._upstream_model(job, spec)
        return await source_for(self.provider(job), upstream, job.params, self.storage)

    def _joined_onto(self, job: Job) -> str | None:
        """The stored source an extension made from its last frame is joined onto."""
        if job.params.edit is None:
            return None
        provider, upstream = self.provider(job), self._upstream_model(job, self.spec(job))
        return job.params.source_key if joins_source(provider, upstream, job.params) else None

    def _upstream_model(self, job: Job, spec: ModelSpec) -> str:
        served = self.current_route(job)
        return served.upstream_model if served is not None else spec.upstream_model

    async def on_error(
        self, job: Job, exc: ProviderError, *, unresolved: ListCreate | None = None
    ) -> None:
        """Apply the policy's decision. ``unresolved``: the error is a create whose
        outcome could not be settled (never re-sent); it is listed for operators, in
        the same transaction as the decision."""
        await self.take(job, Failed(exc, unresolved=unresolved))


def _upstream_cost(
    served: Served | None, credit: CreditValue
) -> Callable[[float, str], int | None] | None:
    """What the route costs upstream for a number of seconds at a resolution, at the
    credit value: its list cost per second (catalog, or the operator's config file) is in
    millicredits at the default value, one US cent a credit."""
    if served is None:
        return None
    route = served.route
    scale = DEFAULT_CREDIT_VALUE / credit.per_credit

    def cost(seconds: float, resolution: str) -> int | None:
        per_second = route.cost_for(resolution)
        if per_second is None:
            return None
        exact = Decimal(per_second) * Decimal(str(seconds)) * scale
        return int(exact.to_integral_value(rounding=ROUND_CEILING))

    return cost


def _pace_key(spec: ModelSpec, served: Served | None) -> str:
    """Jobs of one model on one route take alike; another route may not."""
    return spec.id if served is None else f"{spec.id}@{served.kind}"
