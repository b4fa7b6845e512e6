"""Identifiers that sort by creation time (so id order is newest/oldest order)."""

from __future__ import annotations

import os
import time


def time_ordered_hex() -> str:
    """48 bits of milliseconds then 80 random bits, as 32 hex characters."""
    ms = time.time_ns() // 1_000_000
    return f"{ms:012x}{os.urandom(10).hex()}"


def new_job_id() -> str:
    return f"video_{time_ordered_hex()}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{time_ordered_hex()}"
