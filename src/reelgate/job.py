"""A video job as typed values: its state, parameters, attempts, result and error.

Every layer speaks these values; only ``store/`` turns them into rows and back
(``store.codec``). A step changes a job by making a new one
(``dataclasses.replace``); the store writes the fields that differ.

    queued ──▶ submitting ──▶ running ──▶ mirroring ──▶ completed
       └───────────┴─────────────┴────────────┴──▶ failed | canceled

A job is *delivered* once ``completed_at`` is set: its video is paid for and
reachable. A delivered job may still be ``mirroring`` (its copy is retried in
the background); its public status is then ``completed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ACTIVE_STATES",
    "MAX_IMAGE_BYTES",
    "Attempt",
    "AttemptOutcome",
    "Event",
    "Job",
    "JobError",
    "JobParams",
    "JobResult",
    "JobState",
    "MirrorStatus",
    "PublicStatus",
    "Stage",
    "public_status",
]


MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest input image a job may carry (inline, uploaded or fetched by URL)."""


class PublicStatus(enum.StrEnum):
    """The status clients see (OpenAI's Videos API words)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (PublicStatus.COMPLETED, PublicStatus.FAILED, PublicStatus.CANCELED)


class Stage(enum.StrEnum):
    """What an in-progress job is doing (its status says only ``in_progress``)."""

    SUBMITTING = "submitting"
    RENDERING = "rendering"
    STORING = "storing"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    RUNNING = "running"
    MIRRORING = "mirroring"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_active(self) -> bool:
        return self not in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)

    @property
    def stage(self) -> Stage | None:
        return _STAGE.get(self)


ACTIVE_STATES = tuple(s for s in JobState if s.is_active)
_STAGE = {
    JobState.SUBMITTING: Stage.SUBMITTING,
    JobState.RUNNING: Stage.RENDERING,
    JobState.MIRRORING: Stage.STORING,
}


def public_status(state: JobState, completed_at: int | None) -> PublicStatus:
    """The one internal → public mapping (the API, the events and the usage log use it)."""
    if state is JobState.MIRRORING:
        return PublicStatus.COMPLETED if completed_at is not None else PublicStatus.IN_PROGRESS
    if state in (JobState.SUBMITTING, JobState.RUNNING):
        return PublicStatus.IN_PROGRESS
    return PublicStatus(state.value)


class MirrorStatus(enum.StrEnum):
    PENDING = "pending"
    STORED = "stored"
    FAILED = "failed"


class AttemptOutcome(enum.StrEnum):
    """How one try on one model ended (or where it is, while it runs). The error
    classes of ``reelgate.errors.ErrorClass`` are outcomes too."""

    SUBMITTING = "submitting"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    AMBIGUOUS = "ambiguous"
    REFUSED = "refused"
    QUOTA = "quota"
    TRANSIENT = "transient"
    INVALID = "invalid"
    TIMEOUT = "timeout"
    GONE = "gone"


@dataclass(frozen=True)
class JobError:
    """Why a job or an attempt failed, as the client reads it."""

    code: str
    message: str
    error_class: str | None = None
    """The upstream error's class (``ErrorClass``), on an attempt's error."""
    upstream_status: int | None = None
    lookup_error: str | None = None
    """Why the search for a lost create failed (on an attempt's ``last_error``)."""


@dataclass(frozen=True)
class JobParams:
    """What was asked for, validated against the catalog at submit time."""

    duration_seconds: int
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    negative_prompt: str | None = None
    seed: int | None = None
    image_url: str | None = None
    image_key: str | None = None
    """An inline image, stored at submit time."""
    image_mime_type: str | None = None
    edit: str | None = None
    """``extend`` or ``remix``: the job continues or re-prompts ``source_video_id``, a
    finished video of the same account (``engine.edits``)."""
    source_video_id: str | None = None
    source_key: str | None = None
    """The source's stored copy: what a provider that edits natively is sent, and what an
    extension made from the last frame is joined onto."""
    source_seconds: float | None = None
    audio: bool | None = None
    """The model's audio switch (``generate_audio``...): None leaves its default."""
    provider_params: Mapping[str, Any] | None = None
    """A synced model's own inputs (``catalog.synced``), checked against its schema."""

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Attempt:
    """One try on one model of the chain."""

    model: str
    started_at: int
    outcome: AttemptOutcome = AttemptOutcome.SUBMITTING
    upstream_id: str | None = None
    error: JobError | None = None
    ended_at: int | None = None
    create_pending: bool = False
    """Set before a create is sent, cleared when its answer is recorded: a job claimed
    with it set may have an upstream job (``engine.lost_creates``)."""
    create_sent_at: int | None = None
    adopted: bool = False
    """The upstream job was found after its create's answer was lost, not created."""
    last_error: JobError | None = None
    """The error a retry of this attempt is waiting out."""
    provider: str | None = None
    """The provider kind the attempt went to (None in rows from before routes: the
    model's own provider)."""
    route: str | None = None
    """The route of that provider (``catalog.routing.Served.name``)."""

    def closed(self, outcome: AttemptOutcome, error: JobError | None, now: int) -> Attempt:
        return replace(self, outcome=outcome, error=error, ended_at=now)


@dataclass(frozen=True)
class JobResult:
    """The upstream's finished video and reelgate's copy of it."""

    upstream_url: str
    mirror_status: MirrorStatus = MirrorStatus.PENDING
    duration_seconds: float | None = None
    """What the upstream said it made."""
    upstream_expires_at: int | None = None
    content_type: str | None = None
    key: str | None = None
    """Where the stored copy is (``mirror_status`` stored)."""
    bytes: int | None = None
    sha256: str | None = None
    measured_duration_seconds: float | None = None
    """What the stored copy measures."""
    width: int | None = None
    height: int | None = None
    has_audio: bool | None = None
    mirror_error: str | None = None
    mirror_tries: int = 0
    """Background tries of a failed copy so far."""
    mirror_retry_at: int | None = None
    upstream_cost_usd: str | None = None
    """What the provider said the job cost (USD, exact), where it says so."""
    poster_key: str | None = None
    """The stored copy's poster (WebP), made with it (``media.previews``)."""
    sprite_key: str | None = None
    """Its sprite sheet (JPEG), and where each frame is on it (``sprite_layout``)."""
    sprite_layout: dict[str, Any] | None = None


@dataclass(frozen=True)
class Job:
    id: str
    account_id: str
    source: str
    """Which endpoint made it: ``native`` or ``media_service``."""
    model: str
    chain: tuple[str, ...]
    """The models to try in order: the requested one, then its fallbacks."""
    chain_index: int
    attempt_no: int
    """Counts every upstream create across the chain; part of the idempotency key."""
    state: JobState
    prompt: str
    params: JobParams
    deadline_at: int
    created_at: int
    updated_at: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    progress: int = 0
    upstream_id: str | None = None
    running_since: int | None = None
    poll_count: int = 0
    retries: int = 0
    attempts: tuple[Attempt, ...] = ()
    result: JobResult | None = None
    error: JobError | None = None
    cancel_requested: bool = False
    next_run_at: int | None = None
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    completed_at: int | None = None
    hold_id: str | None = None
    delivered_by: str | None = None
    units_consumed: int | None = None
    cost: int | None = None
    """Millicredits captured (0 when nothing was charged)."""
    event_seq: int = 0
    deleted_at: int | None = None
    active_provider: str | None = None
    """The provider this job occupies a slot of (``provider_max_concurrent``)."""
    webhook_url: str | None = None
    """The request's own webhook target (``webhooks``), beside the account's endpoints."""
    pinned_at: int | None = None
    """Set: the video is kept for ever (``POST /v1/videos/{id}/pin``)."""
    expired_at: int | None = None
    """When the retention sweeper expired the video (``engine.retention``)."""
    purged_at: int | None = None
    """When the expired video's files were deleted (a failed delete is tried again)."""
    delivered_route: str | None = None
    """The route of ``delivered_by`` that made the video (for cost and margin reports)."""
    upstream_cost: int | None = None
    """Millicredits (at the credit value) the delivering route costs upstream for this
    job: its list cost per second times the seconds the provider reported; None where the
    route's cost is not known."""
    key_id: str | None = None
    """The API key that submitted the job (its key budgets count it)."""

    @property
    def current_model(self) -> str:
        return self.chain[self.chain_index]

    @property
    def is_final(self) -> bool:
        return not self.state.is_active

    @property
    def delivered(self) -> bool:
        """Completed and paid for (its copy may still be retried)."""
        return self.completed_at is not None and self.state in (
            JobState.COMPLETED,
            JobState.MIRRORING,
        )

    @property
    def status(self) -> PublicStatus:
        return public_status(self.state, self.completed_at)

    @property
    def stage(self) -> Stage | None:
        return self.state.stage if self.status is PublicStatus.IN_PROGRESS else None

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def with_last_attempt(self, attempt: Attempt) -> tuple[Attempt, ...]:
        """The attempts with the last one replaced."""
        return (*self.attempts[:-1], attempt)

    def closing_attempt(
        self, outcome: AttemptOutcome, error: JobError | None, now: int
    ) -> tuple[Attempt, ...]:
        """The attempts with the open one (if any) closed."""
        last = self.last_attempt
        if last is None or last.ended_at is not None:
            return self.attempts
        return self.with_last_attempt(last.closed(outcome, error, now))


@dataclass(frozen=True)
class Event:
    """A job's change as clients see it (the SSE stream, ``job_events``)."""

    type: str
    """``video.queued``, ``video.in_progress``, ``video.progress``, ``video.completed``, ..."""
    status: PublicStatus
    progress: int
