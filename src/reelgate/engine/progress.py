"""Progress 0-100 that only moves forward.

Bands: queued 0, submitting 1-4, running 5-90, mirroring 90-99, completed 100.
100 is only ever written with the stored video.
"""

from __future__ import annotations

import math

__all__ = ["forward", "mirroring_progress", "running_progress"]

RUN_LO, RUN_HI = 5, 90


def running_progress(reported: int | None, elapsed_s: float, typical_s: float) -> int:
    """The provider's own figure mapped into the running band, or an estimate
    that rises quickly, then slows, and never reaches the band's top."""
    if reported is not None:
        frac = min(max(reported, 0), 100) / 100.0
    else:
        frac = 1.0 - math.exp(-1.2 * max(elapsed_s, 0.0) / max(typical_s, 0.1))
    return min(RUN_HI, RUN_LO + int(frac * (RUN_HI - RUN_LO)))


def mirroring_progress() -> int:
    return RUN_HI


def forward(old: int, new: int) -> int:
    """Never go backwards; never claim 100 here (only completion does)."""
    return min(99, max(old, new))
