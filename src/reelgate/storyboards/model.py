"""A storyboard as values: its shots (what each asks for), each shot's run (its job and
the jobs tried before), and the whole's state. No I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reelgate.catalog.validate import Submission

__all__ = ["MAX_SHOTS", "Shot", "ShotRun", "Storyboard", "StoryboardState"]

MAX_SHOTS = 20


class StoryboardState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    """Shots are being made."""
    JOINING = "joining"
    COMPLETED = "completed"
    FAILED = "failed"
    """A shot failed: the others go on; ``retry`` a shot to carry on."""
    CANCELED = "canceled"

    @property
    def public(self) -> str:
        if self in (StoryboardState.RUNNING, StoryboardState.JOINING):
            return "in_progress"
        return self.value

    @property
    def is_final(self) -> bool:
        return self in (StoryboardState.COMPLETED, StoryboardState.CANCELED)


@dataclass(frozen=True)
class Shot:
    """One shot as asked (the native video body's fields)."""

    model: str
    prompt: str
    duration_seconds: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    fallback: tuple[str, ...] = ()
    image_key: str | None = None
    """An inline start image, stored at submit."""
    image_mime_type: str | None = None
    image_url: str | None = None
    audio: bool | None = None
    """The model's audio switch (a synced model's ``generate_audio``...); None: its default."""
    provider_params: Mapping[str, Any] | None = None
    """A synced model's own inputs (``catalog.synced``), checked against its schema."""

    def submission(self, *, continues: bool) -> Submission:
        """What the catalog checks, as for ``POST /v1/videos`` (``continues``: its start
        image is the previous shot's last frame)."""
        return Submission(
            model=self.model,
            fallback=self.fallback,
            duration_seconds=self.duration_seconds,
            resolution=self.resolution,
            aspect_ratio=self.aspect_ratio,
            has_image=continues or bool(self.image_key or self.image_url),
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            prompt=self.prompt,
            audio=self.audio,
            provider_params=self.provider_params,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt,
            "duration_seconds": self.duration_seconds,
            "resolution": self.resolution,
            "aspect_ratio": self.aspect_ratio,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "fallback": list(self.fallback),
            "image": self.image_key is not None,
            "image_url": self.image_url,
            "audio": self.audio,
            "provider_params": (
                dict(self.provider_params) if self.provider_params is not None else None
            ),
        }
        return out

    def to_row(self) -> dict[str, Any]:
        row = {k: v for k, v in self.__dict__.items() if v is not None}
        row["fallback"] = list(self.fallback)
        if self.provider_params is not None:
            row["provider_params"] = dict(self.provider_params)
        return row

    @classmethod
    def from_row(cls, raw: Mapping[str, Any]) -> Shot:
        return cls(
            model=str(raw["model"]),
            prompt=str(raw["prompt"]),
            duration_seconds=raw.get("duration_seconds"),
            resolution=raw.get("resolution"),
            aspect_ratio=raw.get("aspect_ratio"),
            negative_prompt=raw.get("negative_prompt"),
            seed=raw.get("seed"),
            fallback=tuple(raw.get("fallback") or ()),
            image_key=raw.get("image_key"),
            image_mime_type=raw.get("image_mime_type"),
            image_url=raw.get("image_url"),
            audio=raw.get("audio"),
            provider_params=raw.get("provider_params"),
        )


@dataclass(frozen=True)
class ShotRun:
    job_id: str | None = None
    """The shot's current job; set (and saved) before it is submitted."""
    tried: tuple[str, ...] = ()
    """Jobs of this shot that failed or were canceled, oldest first."""

    def to_row(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "tried": list(self.tried)}

    @classmethod
    def from_row(cls, raw: Mapping[str, Any]) -> ShotRun:
        return cls(job_id=raw.get("job_id"), tried=tuple(raw.get("tried") or ()))


@dataclass(frozen=True)
class Storyboard:
    id: str
    account_id: str
    shots: tuple[Shot, ...]
    runs: tuple[ShotRun, ...]
    created_at: int
    updated_at: int
    state: StoryboardState = StoryboardState.QUEUED
    key_id: str | None = None
    continue_from_previous: bool = False
    crossfade_seconds: float = 0.0
    progress: int = 0
    result: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    next_run_at: int | None = None
    completed_at: int | None = None
    cancel_requested: bool = False
    expired_at: int | None = None
    """Its video was deleted by retention (``engine.retention``)."""

    def with_run(self, index: int, run: ShotRun) -> Storyboard:
        runs = list(self.runs)
        runs[index] = run
        return replace(self, runs=tuple(runs))

    def spec_row(self) -> dict[str, Any]:
        return {
            "shots": [s.to_row() for s in self.shots],
            "continue_from_previous": self.continue_from_previous,
            "crossfade_seconds": self.crossfade_seconds,
        }
