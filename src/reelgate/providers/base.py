"""The one small interface every upstream implements, and the values that cross it.

An adapter turns a :class:`GenerationRequest` into the provider's own wire
format, and the provider's answers back into :class:`Submitted`,
:class:`UpstreamStatus` and a byte stream. It classifies every failure by
raising a :class:`reelgate.errors.ProviderError` subclass; it never decides
what the engine does next, and it never touches the database.

An adapter must never log or return its credentials: download headers that
carry a key live only in memory, for the one request that needs them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "UPLOADED",
    "WEBHOOK_TOLERANCE_SECONDS",
    "EditsVideos",
    "FindsLostCreates",
    "GenerationRequest",
    "ImageInput",
    "Provider",
    "ReceivesWebhooks",
    "ResultLocation",
    "SourceVideo",
    "Submitted",
    "TakesOutputUpload",
    "UpstreamState",
    "UpstreamStatus",
    "WebhookCall",
    "WebhookRejected",
    "WebhookUnverifiable",
    "signed_at",
]


@dataclass(frozen=True)
class ImageInput:
    """An image for image-to-video: inline bytes, or a URL the provider fetches itself."""

    data: bytes | None = None
    mime_type: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class SourceVideo:
    """The finished video an ``extend`` or ``remix`` works on (reelgate's stored copy),
    for a provider that edits natively (``EditsVideos``)."""

    edit: str
    """``extend``: continue it by ``duration_seconds``; the result is the whole video.
    ``remix``: the same video re-made to the new prompt."""
    data: bytes
    mime_type: str = "video/mp4"


@dataclass(frozen=True)
class GenerationRequest:
    job_id: str
    attempt: int
    model: str
    """The public model id (catalog)."""
    upstream_model: str
    """The provider's own model name for this deployment."""
    prompt: str
    duration_seconds: int
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    negative_prompt: str | None = None
    seed: int | None = None
    image: ImageInput | None = None
    output_upload_url: str | None = None
    """Where the provider may PUT the finished video (into reelgate's own storage),
    for providers that take one (``TakesOutputUpload``); its result is then
    ``ResultLocation(UPLOADED)``."""
    source: SourceVideo | None = None
    """Set for an edit the provider makes natively (``EditsVideos.edits_natively``)."""
    callback_url: str | None = None
    """reelgate's public URL for this job's inbound webhook, for providers that call back
    (``ReceivesWebhooks``): the adapter registers it with the create (fal's
    ``fal_webhook``, Replicate's ``webhook``). None: no public URL is configured, so the
    job is polled only."""
    native_input: Mapping[str, Any] | None = None
    """For a synced model (``catalog.synced``): its input in its own schema's names and
    formats, already checked against that schema; the adapter sends it as it is, adding
    the image under ``native_image_field``."""
    native_image_field: str | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable per job and attempt: a re-sent create after a crash is the same create."""
        return f"{self.job_id}-{self.attempt}"


UPLOADED = "reelgate-upload:"
"""A result the provider wrote to ``GenerationRequest.output_upload_url``: the engine
reads it from its own storage (``engine.steps.upload_key``) instead of downloading."""


@runtime_checkable
class TakesOutputUpload(Protocol):
    """A provider that can write its result to a URL reelgate gives it (xAI's
    ``output.upload_url``): the engine puts one in every request to it."""

    takes_output_upload: bool


@runtime_checkable
class EditsVideos(Protocol):
    """A provider with its own extend or remix of a finished video (xAI's
    ``/v1/videos/extensions`` and ``/v1/videos/edits``). Without it, an extension is
    made by image-to-video from the source's last frame and joined on by reelgate, and a
    remix cannot be made."""

    def edits_natively(
        self, edit: str, upstream_model: str, duration_seconds: int, source_seconds: float
    ) -> bool:
        """Whether this deployment's ``upstream_model`` makes ``edit`` itself for a source
        of ``source_seconds`` (and, to extend, ``duration_seconds`` more). Pure: the
        engine asks it when it sends the create and again when it stores the result."""
        ...


@dataclass(frozen=True)
class Submitted:
    upstream_id: str


class UpstreamState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class ResultLocation:
    """Where the finished video is. ``url`` is safe to store and show; secrets are not here."""

    url: str
    expires_at: datetime | None = None
    content_type: str = "video/mp4"


@dataclass(frozen=True)
class UpstreamStatus:
    """A poll answer. A failed upstream job is not a status: the adapter raises instead."""

    state: UpstreamState
    progress: int | None = None
    """0-100 when the provider reports one; None when it does not (the engine estimates)."""
    result: ResultLocation | None = None
    duration_seconds: float | None = None
    extra: Mapping[str, object] = field(default_factory=dict)
    poll_after_seconds: float | None = None
    """The upstream's own word on when to ask again (OpenAI's ``openai-poll-after-ms``):
    it overrides the model's schedule, within the engine's bounds."""
    cost_usd: str | None = None
    """What the provider says this job cost, in USD as an exact decimal string, where it
    says so (xAI's ``usage.cost_in_usd_ticks``): preferred to the route's list cost."""


@runtime_checkable
class Provider(Protocol):
    """One upstream deployment."""

    name: str
    route: str
    """Which of its provider's routes this deployment is (``gemini`` or ``vertex``, a
    DashScope region...): the catalog's ``ModelSpec.routes`` key for its model ids and
    their life cycle."""
    supports_cancel: bool
    idempotent_create: bool
    """True when re-sending create with the same idempotency key cannot start a second job."""

    async def create(self, request: GenerationRequest) -> Submitted: ...

    async def status(self, upstream_id: str) -> UpstreamStatus: ...

    async def cancel(self, upstream_id: str) -> None:
        """Best effort; only called when ``supports_cancel``."""
        ...

    def download(self, result: ResultLocation) -> AsyncIterator[bytes]:
        """Stream the finished file, sending whatever credentials the provider needs."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class FindsLostCreates(Protocol):
    """A provider whose API lists recent jobs, so a create whose answer was lost can be
    looked for (and adopted) instead of sent again (``engine.lost_creates``)."""

    async def find_created(
        self, request: GenerationRequest, since: datetime, exclude: frozenset[str]
    ) -> list[str]:
        """Upstream ids of jobs created at or after ``since`` that are the create for
        ``request``: same model and the same prompt (and shape, where the provider
        shows it), oldest first, leaving out ``exclude`` (jobs other jobs already
        have). A job whose prompt cannot be told yet makes it raise a
        ``TransientError`` (look again later): a job that might be someone else's
        is never returned. Raises a ``ProviderError`` when the listing fails."""
        ...


@dataclass(frozen=True)
class WebhookCall:
    """A provider's call to reelgate that its signature proved genuine."""

    upstream_id: str
    """The upstream job it is about (fal's request id, Replicate's prediction id...)."""
    delivery_id: str
    """Unique per delivery (the ``webhook-id`` header, or the provider's equivalent): a
    second call with the same one is a replay and changes nothing."""
    sent_at: float
    """When the provider signed it (Unix seconds), already checked to be recent."""
    final: bool
    """The call says the upstream job ended (succeeded, failed or canceled)."""
    result: UpstreamStatus | None = None
    """The finished video the signed body names (a success only): the job moves on from
    it without polling. None: the job is polled now instead (a failure, say, which the
    poll classifies)."""

    def is_about(self, upstream_id: str) -> bool:
        """Whether the call is about the upstream job reelgate stored as ``upstream_id``
        (a provider whose stored ids carry more than its calls name overrides this)."""
        return upstream_id == self.upstream_id


class WebhookRejected(Exception):
    """An inbound call that is not genuinely the provider's (bad or missing signature,
    unknown key), or is stale or malformed. ``reason`` is safe to log; it never holds a
    secret or the signature."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookUnverifiable(WebhookRejected):
    """The call could not be checked now (the provider's keys or secret could not be
    fetched): answered 503, so the provider delivers it again, instead of 401."""


@runtime_checkable
class ReceivesWebhooks(Protocol):
    """A provider that can call reelgate back when a job changes. With
    ``per_job_callbacks`` the engine passes a per-job ``GenerationRequest.callback_url``
    (fal, Replicate); without, the provider calls one endpoint the operator registered
    with it, ``{public_url}/v1/provider-hooks/{kind}`` (OpenAI's project webhooks), and
    the call names the upstream job. The API hands each call to ``verify_webhook``.
    Polling stays on as a slower safety net."""

    receives_webhooks: bool
    per_job_callbacks: bool

    async def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, now: float
    ) -> WebhookCall:
        """Check the call as the provider documents (its signature headers, its secret or
        published keys, a timestamp within ``WEBHOOK_TOLERANCE_SECONDS`` of ``now``) and
        read which upstream job it is about. ``headers`` are lower-cased. Raises
        ``WebhookRejected`` for anything forged, stale or malformed."""
        ...


WEBHOOK_TOLERANCE_SECONDS = 300.0
"""How far a signed timestamp may be from now (both ways) before a call is stale
(Standard Webhooks and fal both use five minutes)."""

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def signed_at(stamp: str, now: float, header: str) -> float:
    """A webhook's timestamp header (Unix seconds, ASCII digits only: ``"²".isdigit()``
    is True), refused when it is more than ``WEBHOOK_TOLERANCE_SECONDS`` from ``now``
    (stale or replayed)."""
    if not _UNIX_SECONDS.fullmatch(stamp):
        raise WebhookRejected(f"{header} is not Unix seconds")
    sent_at = float(stamp)
    if abs(now - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRejected(
            f"{header} is outside the {WEBHOOK_TOLERANCE_SECONDS:g} s tolerance (stale or replayed)"
        )
    return sent_at
