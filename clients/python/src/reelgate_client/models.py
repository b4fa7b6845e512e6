"""Typed values for what the gateway answers: frozen dataclasses built from its JSON.

Each value keeps the JSON it was built from in ``raw`` (fields a newer gateway
adds are there before the SDK learns them). Times become timezone-aware UTC
``datetime``; money stays exact: integer millicredits beside the gateway's
decimal string. Parsing is lenient about missing fields and never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "FINAL_STATUSES",
    "AllowedParams",
    "Attempt",
    "Balance",
    "Cost",
    "JobError",
    "Model",
    "ModelDefaults",
    "Money",
    "Page",
    "Price",
    "ProviderParam",
    "Storyboard",
    "StoryboardShot",
    "SyncedMapping",
    "SyncedModel",
    "UsageDay",
    "UsageRow",
    "UsageSummary",
    "Video",
    "VideoEvent",
    "VideoParams",
    "VideoResult",
]

FINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
"""A job in one of these statuses never changes again."""

T = TypeVar("T")
Json = Mapping[str, Any]


def _map(value: object) -> Json:
    return value if isinstance(value, Mapping) else {}


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _time(value: object) -> datetime | None:
    """Unix seconds (the job object) or ISO 8601 (the usage log) to aware UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@dataclass(frozen=True)
class Money:
    """The money credits stand for at the gateway's credit value: an exact decimal
    string and a currency code ("6.00", "USD")."""

    amount: str
    currency: str

    def __str__(self) -> str:
        symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(self.currency)
        return f"{symbol}{self.amount}" if symbol else f"{self.amount} {self.currency}"

    @classmethod
    def from_wire(cls, data: object) -> Money | None:
        d = _map(data)
        if not d.get("amount"):
            return None
        return cls(amount=str(d["amount"]), currency=str(d.get("currency") or ""))


@dataclass(frozen=True)
class Cost:
    """What a finished job was charged: ``credits`` as the gateway's exact decimal
    string, ``millicredits`` as an integer (1 credit = 1000 millicredits), and the
    ``money`` they stand for (None from gateways before it was given)."""

    credits: str
    millicredits: int
    money: Money | None = None

    @classmethod
    def from_wire(cls, data: object) -> Cost | None:
        d = _map(data)
        if not d:
            return None
        return cls(
            credits=str(d.get("credits", "0.000")),
            millicredits=int(d.get("millicredits") or 0),
            money=Money.from_wire(d.get("money")),
        )


@dataclass(frozen=True)
class JobError:
    code: str
    message: str

    @classmethod
    def from_wire(cls, data: object) -> JobError | None:
        d = _map(data)
        if not d:
            return None
        return cls(code=str(d.get("code") or "failed"), message=str(d.get("message") or ""))


@dataclass(frozen=True)
class VideoResult:
    """The finished video. ``url`` is a signed, expiring link (fetch a fresh one
    with ``get``); ``mirror_status`` is "stored" once the gateway holds a copy."""

    url: str | None
    mirror_status: str | None
    duration_seconds: float | None
    width: int | None
    height: int | None
    bytes: int | None
    content_type: str | None
    sha256: str | None
    has_audio: bool | None
    url_expires_in: int | None
    thumbnail_url: str | None = None
    """The poster (WebP), signed and expiring like ``url``."""
    spritesheet_url: str | None = None
    """The sprite sheet (JPEG): tile ``i`` shows the video at ``(i + 0.5) *
    spritesheet["interval_seconds"]``, at column ``i % columns``, row ``i // columns``."""
    spritesheet: dict[str, Any] | None = None

    @classmethod
    def from_wire(cls, data: object) -> VideoResult | None:
        d = _map(data)
        if not d:
            return None
        audio = d.get("has_audio")
        return cls(
            url=_opt_str(d.get("url")),
            mirror_status=_opt_str(d.get("mirror_status")),
            duration_seconds=_opt_float(d.get("duration_seconds")),
            width=_opt_int(d.get("width")),
            height=_opt_int(d.get("height")),
            bytes=_opt_int(d.get("bytes")),
            content_type=_opt_str(d.get("content_type")),
            sha256=_opt_str(d.get("sha256")),
            has_audio=audio if isinstance(audio, bool) else None,
            url_expires_in=_opt_int(d.get("url_expires_in")),
            thumbnail_url=_opt_str(d.get("thumbnail_url")),
            spritesheet_url=_opt_str(d.get("spritesheet_url")),
            spritesheet=dict(_map(d.get("spritesheet"))) or None,
        )


@dataclass(frozen=True)
class VideoParams:
    duration_seconds: int | None
    resolution: str | None
    aspect_ratio: str | None
    negative_prompt: str | None = None
    seed: int | None = None
    image_url: str | None = None
    image: bool = False
    audio: bool | None = None
    """The model's audio switch as asked (None: the model's default)."""
    provider_params: Mapping[str, Any] | None = None
    """A synced model's own inputs, as sent."""

    @classmethod
    def from_wire(cls, data: object) -> VideoParams:
        d = _map(data)
        return cls(
            duration_seconds=_opt_int(d.get("duration_seconds")),
            resolution=_opt_str(d.get("resolution")),
            aspect_ratio=_opt_str(d.get("aspect_ratio")),
            negative_prompt=_opt_str(d.get("negative_prompt")),
            seed=_opt_int(d.get("seed")),
            image_url=_opt_str(d.get("image_url")),
            image=bool(d.get("image")),
            audio=d["audio"] if isinstance(d.get("audio"), bool) else None,
            provider_params=dict(_map(d.get("provider_params"))) or None,
        )


@dataclass(frozen=True)
class Attempt:
    """One model tried for the job, in order, on which route: its outcome and error."""

    model: str
    upstream_id: str | None
    outcome: str | None
    error: Json | None
    started_at: datetime | None
    ended_at: datetime | None
    provider: str | None = None
    """The provider kind the try went to (``fal``, ``veo``...)."""
    route: str | None = None
    """That provider's route (``vertex``, ``fal``, a DashScope region...)."""

    @classmethod
    def from_wire(cls, data: object) -> Attempt:
        d = _map(data)
        error = d.get("error")
        return cls(
            model=str(d.get("model") or ""),
            upstream_id=_opt_str(d.get("upstream_id")),
            outcome=_opt_str(d.get("outcome")),
            error=error if isinstance(error, Mapping) else None,
            started_at=_time(d.get("started_at")),
            ended_at=_time(d.get("ended_at")),
            provider=_opt_str(d.get("provider")),
            route=_opt_str(d.get("route")),
        )


@dataclass(frozen=True)
class Video:
    """A video job as the gateway reports it (``GET /v1/videos/{id}``)."""

    id: str
    model: str
    status: str
    """queued, in_progress, completed, failed or canceled."""
    progress: int
    prompt: str
    created_at: datetime | None
    completed_at: datetime | None
    seconds: str
    size: str
    params: VideoParams
    fallback: tuple[str, ...]
    delivered_by: str | None
    result: VideoResult | None
    error: JobError | None
    attempts: tuple[Attempt, ...]
    units_consumed: int | None
    cost: Cost | None
    metadata: Mapping[str, str]
    raw: Json = field(default_factory=dict, repr=False, compare=False)
    extended_from_video_id: str | None = None
    """Set on an extension (``Client.extend``): the video it continues."""
    remixed_from_video_id: str | None = None
    """Set on a remix (``Client.remix``): the video it re-makes."""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"

    @classmethod
    def from_wire(cls, data: object) -> Video:
        d = _map(data)
        metadata = _map(d.get("metadata"))
        attempts = d.get("attempts")
        return cls(
            id=str(d.get("id") or ""),
            model=str(d.get("model") or ""),
            status=str(d.get("status") or ""),
            progress=_opt_int(d.get("progress")) or 0,
            prompt=str(d.get("prompt") or ""),
            created_at=_time(d.get("created_at")),
            completed_at=_time(d.get("completed_at")),
            seconds=str(d.get("seconds") or ""),
            size=str(d.get("size") or ""),
            params=VideoParams.from_wire(d.get("params")),
            fallback=_strs(d.get("fallback")),
            delivered_by=_opt_str(d.get("delivered_by")),
            result=VideoResult.from_wire(d.get("result")),
            error=JobError.from_wire(d.get("error")),
            attempts=tuple(Attempt.from_wire(a) for a in attempts)
            if isinstance(attempts, list)
            else (),
            units_consumed=_opt_int(d.get("units_consumed")),
            cost=Cost.from_wire(d.get("cost")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            raw=d,
            extended_from_video_id=_opt_str(d.get("extended_from_video_id")),
            remixed_from_video_id=_opt_str(d.get("remixed_from_video_id")),
        )


@dataclass(frozen=True)
class StoryboardShot:
    """One shot of a storyboard and how its job is doing."""

    index: int
    """From 1."""
    model: str
    prompt: str
    duration_seconds: int | None
    status: str
    """pending (not submitted yet), then the job's status."""
    progress: int
    video_id: str | None
    delivered_by: str | None
    cost: Cost | None
    tried: tuple[str, ...]
    """Jobs of this shot that failed before a retry."""

    @classmethod
    def from_wire(cls, data: object) -> StoryboardShot:
        d = _map(data)
        return cls(
            index=_opt_int(d.get("index")) or 0,
            model=str(d.get("model") or ""),
            prompt=str(d.get("prompt") or ""),
            duration_seconds=_opt_int(d.get("duration_seconds")),
            status=str(d.get("status") or ""),
            progress=_opt_int(d.get("progress")) or 0,
            video_id=_opt_str(d.get("video_id")),
            delivered_by=_opt_str(d.get("delivered_by")),
            cost=Cost.from_wire(d.get("cost")),
            tried=_strs(d.get("tried")),
        )


@dataclass(frozen=True)
class Storyboard:
    """Shots made as jobs and joined into one video (``GET /v1/storyboards/{id}``)."""

    id: str
    status: str
    """queued, in_progress, completed, failed (a shot failed: retry it) or canceled."""
    stage: str | None
    """shots or joining, while in progress."""
    progress: int
    shots: tuple[StoryboardShot, ...]
    result: Json | None
    """The joined video: ``url``, ``duration_seconds``, ``width``, ``height``, ``frames``,
    ``joins_at``, ``thumbnail_url``, ``spritesheet_url``..."""
    error: Json | None
    units_consumed: int
    cost: Cost | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, data: object) -> Storyboard:
        d = _map(data)
        shots = d.get("shots")
        result, error = d.get("result"), d.get("error")
        return cls(
            id=str(d.get("id") or ""),
            status=str(d.get("status") or ""),
            stage=_opt_str(d.get("stage")),
            progress=_opt_int(d.get("progress")) or 0,
            shots=tuple(StoryboardShot.from_wire(s) for s in shots)
            if isinstance(shots, list)
            else (),
            result=_map(result) if result else None,
            error=_map(error) if error else None,
            units_consumed=_opt_int(d.get("units_consumed")) or 0,
            cost=Cost.from_wire(d.get("cost")),
            raw=d,
        )


@dataclass(frozen=True)
class VideoEvent:
    """One event from ``GET /v1/videos/{id}/events``: numbered per job from 1, with
    the job as it stood when the event was sent."""

    seq: int
    type: str
    """video.queued, video.in_progress, video.progress, video.completed, video.failed
    or video.canceled."""
    status: str
    progress: int
    created_at: datetime | None
    video: Video | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, data: object, *, event_type: str = "", event_id: str = "") -> VideoEvent:
        d = _map(data)
        job = d.get("job")
        return cls(
            seq=_opt_int(d.get("seq")) or _opt_int(event_id) or 0,
            type=str(d.get("type") or event_type),
            status=str(d.get("status") or ""),
            progress=_opt_int(d.get("progress")) or 0,
            created_at=_time(d.get("created_at")),
            video=Video.from_wire(job) if isinstance(job, Mapping) else None,
        )


@dataclass(frozen=True)
class AllowedParams:
    """What a model accepts: submit only these values."""

    resolution: tuple[str, ...]
    aspect_ratio: tuple[str, ...]
    duration_seconds: tuple[int, ...]
    duration_seconds_by_resolution: Mapping[str, tuple[int, ...]]
    image_input: bool
    negative_prompt: bool
    seed: bool

    @classmethod
    def from_wire(cls, data: object) -> AllowedParams:
        d = _map(data)
        by_res = _map(d.get("duration_seconds_by_resolution"))
        durations = d.get("duration_seconds")
        return cls(
            resolution=_strs(d.get("resolution")),
            aspect_ratio=_strs(d.get("aspect_ratio")),
            duration_seconds=tuple(int(x) for x in durations)
            if isinstance(durations, list)
            else (),
            duration_seconds_by_resolution={
                str(k): tuple(int(x) for x in v) for k, v in by_res.items() if isinstance(v, list)
            },
            image_input=bool(d.get("image_input")),
            negative_prompt=bool(d.get("negative_prompt")),
            seed=bool(d.get("seed")),
        )


@dataclass(frozen=True)
class Price:
    credits_per_second: str
    millicredits_per_second: int
    by_resolution: Mapping[str, str]
    money_per_second: Money | None = None

    @classmethod
    def from_wire(cls, data: object) -> Price:
        d = _map(data)
        return cls(
            credits_per_second=str(d.get("credits_per_second") or "0.000"),
            millicredits_per_second=_opt_int(d.get("millicredits_per_second")) or 0,
            by_resolution={str(k): str(v) for k, v in _map(d.get("by_resolution")).items()},
            money_per_second=Money.from_wire(d.get("money_per_second")),
        )


@dataclass(frozen=True)
class ModelDefaults:
    duration_seconds: int | None
    resolution: str | None
    aspect_ratio: str | None

    @classmethod
    def from_wire(cls, data: object) -> ModelDefaults:
        d = _map(data)
        return cls(
            duration_seconds=_opt_int(d.get("duration_seconds")),
            resolution=_opt_str(d.get("resolution")),
            aspect_ratio=_opt_str(d.get("aspect_ratio")),
        )


@dataclass(frozen=True)
class ProviderParam:
    """One input of a synced model's provider schema: pass it in ``provider_params``."""

    type: tuple[str, ...]
    """JSON Schema types (``string``, ``integer``, ``boolean``...)."""
    required: bool
    enum: tuple[Any, ...] | None = None
    default: Any = None
    """None also when the schema gives no default (``raw`` tells the two apart)."""
    minimum: float | None = None
    maximum: float | None = None
    description: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: object) -> ProviderParam:
        d = _map(data)
        types = d.get("type")
        enum = d.get("enum")
        return cls(
            type=(str(types),) if isinstance(types, str) else _strs(types),
            required=bool(d.get("required")),
            enum=tuple(enum) if isinstance(enum, list | tuple) else None,
            default=d.get("default"),
            minimum=_opt_float(d.get("minimum")),
            maximum=_opt_float(d.get("maximum")),
            description=_opt_str(d.get("description")),
            raw=d,
        )


@dataclass(frozen=True)
class SyncedMapping:
    """How reelgate's fields map onto a synced model's provider inputs."""

    status: str
    """``mapped``, or ``unmappable`` (``problems`` says why; the model cannot be used)."""
    problems: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    """reelgate field (``prompt``, ``duration_seconds``...) -> the provider's input name."""
    image_required: bool = False
    """The model only animates a still: send ``image`` or ``image_url``."""
    override_source: str | None = None
    """Where a hand-written mapping override came from, when one applies."""

    @classmethod
    def from_wire(cls, data: object) -> SyncedMapping:
        d = _map(data)
        return cls(
            status=str(d.get("status") or "mapped"),
            problems=_strs(d.get("problems")),
            fields={str(k): str(v) for k, v in _map(d.get("fields")).items()},
            image_required=bool(d.get("image_required")),
            override_source=_opt_str(d.get("override_source")),
        )


@dataclass(frozen=True)
class SyncedModel:
    """Where a synced model came from: a provider's own model list, fetched with its
    input schema (``Model.synced``; None for the built-in catalog's models)."""

    provider: str
    upstream_id: str
    category: str | None
    schema_hash: str | None
    fetched_at: datetime | None
    status: str
    """``active``, or ``retired`` (the provider no longer lists it)."""
    mapping: SyncedMapping
    priced: bool
    price_source: str | None
    provider_params: Mapping[str, ProviderParam]
    """The provider's own inputs, by name: send them as ``provider_params``."""
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: object) -> SyncedModel | None:
        d = _map(data)
        if not d:
            return None
        params = _map(d.get("provider_params"))
        return cls(
            provider=str(d.get("provider") or ""),
            upstream_id=str(d.get("upstream_id") or ""),
            category=_opt_str(d.get("category")),
            schema_hash=_opt_str(d.get("schema_hash")),
            fetched_at=_time(d.get("fetched_at")),
            status=str(d.get("status") or "active"),
            mapping=SyncedMapping.from_wire(d.get("mapping")),
            priced=bool(d.get("priced")),
            price_source=_opt_str(d.get("price_source")),
            provider_params={str(k): ProviderParam.from_wire(v) for k, v in params.items()},
            raw=d,
        )


@dataclass(frozen=True)
class Model:
    """A model from ``GET /v1/models``: what it is good for, what it costs, what it
    accepts, and whether this key can use it on this gateway now."""

    id: str
    display_name: str
    provider: str
    strengths: str
    notes: str
    max_duration_seconds: int | None
    price: Price
    allowed: AllowedParams
    defaults: ModelDefaults
    fallback: tuple[str, ...]
    available: bool
    usable: bool
    not_usable_reason: str | None
    emulated: bool
    deprecated: bool
    lifecycle: str = "ga"
    """``preview``, ``ga``, ``deprecated`` or ``retired`` on the route this gateway uses."""
    retires_at: str | None = None
    """The day (ISO) its route stops serving it, when announced."""
    successor: str | None = None
    """The model to move to when it retires."""
    route: str | None = None
    raw: Json = field(default_factory=dict, repr=False, compare=False)
    source: str = "builtin"
    """``builtin`` (reelgate's own catalog) or ``synced`` (from a provider's model list)."""
    priced: bool = True
    """False for a synced model with no known price (it cannot be billed, so not used)."""
    capabilities: tuple[str, ...] = ()
    """``image_input``, ``audio``, ``negative_prompt``, ``seed``, ``text_to_video``
    (empty from gateways before they were listed)."""
    synced: SyncedModel | None = None
    """Set for a synced model: its provider schema, mapping and inputs."""

    @property
    def is_synced(self) -> bool:
        return self.source == "synced"

    @classmethod
    def from_wire(cls, data: object) -> Model:
        d = _map(data)
        priced = d.get("priced")
        return cls(
            id=str(d.get("id") or ""),
            display_name=str(d.get("display_name") or d.get("id") or ""),
            provider=str(d.get("provider") or ""),
            strengths=str(d.get("strengths") or ""),
            notes=str(d.get("notes") or ""),
            max_duration_seconds=_opt_int(d.get("max_duration_seconds")),
            price=Price.from_wire(d.get("price")),
            allowed=AllowedParams.from_wire(d.get("allowedParams")),
            defaults=ModelDefaults.from_wire(d.get("defaults")),
            fallback=_strs(d.get("fallback")),
            available=bool(d.get("available")),
            usable=bool(d.get("usable")),
            not_usable_reason=_opt_str(d.get("not_usable_reason")),
            emulated=bool(d.get("emulated")),
            deprecated=bool(d.get("deprecated")),
            lifecycle=str(d.get("lifecycle") or "ga"),
            retires_at=_opt_str(d.get("retires_at")),
            successor=_opt_str(d.get("successor")),
            route=_opt_str(d.get("route")),
            raw=d,
            source=str(d.get("source") or "builtin"),
            priced=priced if isinstance(priced, bool) else True,
            capabilities=_strs(d.get("capabilities")),
            synced=SyncedModel.from_wire(d.get("synced")),
        )


@dataclass(frozen=True)
class UsageRow:
    """One line of Settings → Usage → Recent requests."""

    job_id: str
    model: str
    delivered_by: str | None
    status: str
    seconds: int | None
    requested_seconds: int | None
    cost: str | None
    cost_millicredits: int | None
    created_at: datetime | None
    completed_at: datetime | None
    latency_seconds: float | None
    error_code: str | None
    raw: Json = field(default_factory=dict, repr=False, compare=False)
    cost_money: Money | None = None

    @classmethod
    def from_wire(cls, data: object) -> UsageRow:
        d = _map(data)
        return cls(
            job_id=str(d.get("job_id") or ""),
            model=str(d.get("model") or ""),
            delivered_by=_opt_str(d.get("delivered_by")),
            status=str(d.get("status") or ""),
            seconds=_opt_int(d.get("seconds")),
            requested_seconds=_opt_int(d.get("requested_seconds")),
            cost=_opt_str(d.get("cost")),
            cost_millicredits=_opt_int(d.get("cost_millicredits")),
            created_at=_time(d.get("created_at")),
            completed_at=_time(d.get("completed_at")),
            latency_seconds=_opt_float(d.get("latency_seconds")),
            error_code=_opt_str(d.get("error_code")),
            raw=d,
            cost_money=Money.from_wire(d.get("cost_money")),
        )


@dataclass(frozen=True)
class UsageDay:
    date: date
    model: str | None
    jobs: int
    seconds: int
    cost: str
    cost_millicredits: int

    @classmethod
    def from_wire(cls, data: object) -> UsageDay:
        d = _map(data)
        return cls(
            date=date.fromisoformat(str(d.get("date"))),
            model=_opt_str(d.get("model")),
            jobs=_opt_int(d.get("jobs")) or 0,
            seconds=_opt_int(d.get("seconds")) or 0,
            cost=str(d.get("cost") or "0.000"),
            cost_millicredits=_opt_int(d.get("cost_millicredits")) or 0,
        )


@dataclass(frozen=True)
class UsageSummary:
    """Seconds delivered and credits charged per delivering model per UTC day."""

    start: date
    end: date
    days: tuple[UsageDay, ...]
    total_seconds: int
    total_cost: str
    raw: Json = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: object) -> UsageSummary:
        d = _map(data)
        rows = d.get("data")
        return cls(
            start=date.fromisoformat(str(d.get("start"))),
            end=date.fromisoformat(str(d.get("end"))),
            days=tuple(UsageDay.from_wire(r) for r in rows) if isinstance(rows, list) else (),
            total_seconds=_opt_int(d.get("total_seconds")) or 0,
            total_cost=str(d.get("total_cost") or "0.000"),
            raw=d,
        )


@dataclass(frozen=True)
class Balance:
    """Credits: ``available`` = ``balance`` minus ``held`` (holds cover jobs in flight).
    Strings are the gateway's exact decimals; ``*_millicredits`` are integers."""

    balance: str
    held: str
    available: str
    balance_millicredits: int
    held_millicredits: int
    available_millicredits: int
    raw: Json = field(default_factory=dict, repr=False, compare=False)
    money: Mapping[str, Money] = field(default_factory=dict)
    """``balance``, ``held``, ``available`` as money (empty from older gateways)."""

    @classmethod
    def from_wire(cls, data: object) -> Balance:
        d = _map(data)
        milli = _map(d.get("millicredits"))
        return cls(
            balance=str(d.get("balance") or "0.000"),
            held=str(d.get("held") or "0.000"),
            available=str(d.get("available") or "0.000"),
            balance_millicredits=_opt_int(milli.get("balance")) or 0,
            held_millicredits=_opt_int(milli.get("held")) or 0,
            available_millicredits=_opt_int(milli.get("available")) or 0,
            raw=d,
            money=_balance_money(d.get("money")),
        )


def _balance_money(data: object) -> Mapping[str, Money]:
    d = _map(data)
    currency = str(d.get("currency") or "")
    return {
        name: Money(str(d[name]), currency)
        for name in ("balance", "held", "available")
        if d.get(name)
    }


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list. Pass ``last_id`` as ``after`` for the next page (for lists
    with an opaque cursor, such as the models, pass ``next_cursor`` instead)."""

    data: tuple[T, ...]
    has_more: bool
    last_id: str | None
    next_cursor: str | None = None
    """The opaque cursor of the next page, for lists that give one (None on the last)."""
    total: int | None = None
    """How many items match across all pages, for lists that count them."""

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
