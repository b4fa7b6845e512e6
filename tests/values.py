"""Shared test values: a driven clock and a job builder (no database, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from reelgate.config import Settings
from reelgate.job import Job, JobParams, JobState
from reelgate.providers.local import LocalSettings, work_dir

NOW = 1_800_000_000_000


@dataclass
class Clock:
    """A clock the test moves by hand (epoch milliseconds)."""

    now: int = NOW

    def __call__(self) -> int:
        return self.now


PARAMS = JobParams(
    duration_seconds=4, resolution="720p", aspect_ratio="16:9", width=1280, height=720
)


def a_job(job_id: str = "video_1", **overrides: object) -> Job:
    """A queued 4 s 720p job on ``local`` (then ``other``), due now."""
    base = Job(
        id=job_id,
        account_id="acct_1",
        source="native",
        model="local",
        chain=("local", "other"),
        chain_index=0,
        attempt_no=0,
        state=JobState.QUEUED,
        prompt="a fox",
        params=PARAMS,
        deadline_at=NOW + 600_000,
        created_at=NOW,
        updated_at=NOW,
        next_run_at=NOW,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def local_work_dir(settings: Settings) -> Path:
    """Where ``settings`` have the local renderer keep its renders."""
    own = settings.provider_settings("local")
    assert isinstance(own, LocalSettings)
    return work_dir(own, settings.data_dir)
