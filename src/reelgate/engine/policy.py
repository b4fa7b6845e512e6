"""What the engine does next after an upstream error: a decision is a value.

DESIGN.md's table, as code:

    refused   -> Fail (no fallback: another model would be asked the same thing)
    quota     -> FallBack to the next model in the chain, else Fail
    gone      -> FallBack to the next model in the chain, else Fail (model_gone)
    transient -> Retry the same step with jittered backoff, then FallBack, else Fail
    invalid   -> Fail with the upstream's message
    timeout   -> Fail
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from reelgate.errors import ErrorClass, ProviderError

__all__ = [
    "MAX_TRANSIENT_RETRIES",
    "Decision",
    "Fail",
    "FallBack",
    "Retry",
    "backoff_seconds",
    "decide",
    "user_message",
]

MAX_TRANSIENT_RETRIES = 5


@dataclass(frozen=True)
class Retry:
    delay_seconds: float


@dataclass(frozen=True)
class FallBack:
    reason: str


@dataclass(frozen=True)
class Fail:
    code: str
    message: str


Decision = Retry | FallBack | Fail


Uniform = Callable[[float, float], float]


def backoff_seconds(
    retries: int, *, base: float = 1.0, cap: float = 60.0, uniform: Uniform = random.uniform
) -> float:
    """Full-jitter exponential backoff: spreads retries of many jobs hitting one outage.
    ``uniform``: the jitter source (random, not for secrets; a test passes a fixed one)."""
    return uniform(0, min(cap, base * 2.0**retries))


def user_message(error: ProviderError, model: str, *, suggest_fallback: bool = True) -> str:
    """What the client reads. ``suggest_fallback``: the request's endpoint takes a
    ``fallback`` list (the media-video-from-text service does not), so say so."""
    if error.error_class is ErrorClass.REFUSED:
        what = error.details.get("flagged")
        flagged = f" The {what} was flagged." if what else ""
        return (
            f"{model} refused this request on safety grounds: {error.message}.{flagged} "
            "Reword the prompt (or use another image) and resubmit; refusals are not "
            "retried on other models."
        )
    if error.error_class is ErrorClass.QUOTA:
        advice = (
            "Add a fallback model to the request (fallback: [...]) or retry later."
            if suggest_fallback
            else "Retry later, or choose the other model."
        )
        return f"{model} is out of quota or rate-limited upstream ({error.message}). {advice}"
    if error.error_class is ErrorClass.GONE:
        advice = (
            "Choose another model, or add a fallback model to the request (fallback: [...])."
            if suggest_fallback
            else "Choose the other model."
        )
        return f"{model} is no longer served by its provider ({error.message}). {advice}"
    if error.error_class is ErrorClass.TIMEOUT:
        return "The video was not ready before the job's deadline. Resubmit, or try a faster model."
    return f"{model}: {error.message}"


def decide(
    error: ProviderError,
    *,
    retries: int,
    has_next: bool,
    model: str,
    may_duplicate: bool = False,
    suggest_fallback: bool = True,
    uniform: Uniform = random.uniform,
) -> Decision:
    """``may_duplicate``: re-sending this step could start a second upstream job (a
    create whose answer was lost, to a provider that cannot dedupe): never retry it."""
    cls = error.error_class
    if may_duplicate:
        if has_next:
            return FallBack(reason="ambiguous_create")
        return Fail(
            code="upstream_unknown",
            message=(
                f"{model} did not confirm whether it accepted the job ({error.message}), and "
                "sending it again could make (and bill) a second video, so it was not sent "
                "again; this job is not billed. Resubmit"
                + (", or add a fallback model." if suggest_fallback else ".")
            ),
        )
    if cls is ErrorClass.TRANSIENT and retries < MAX_TRANSIENT_RETRIES:
        delay = max(backoff_seconds(retries, uniform=uniform), error.retry_after or 0.0)
        return Retry(delay_seconds=delay)
    if cls in (ErrorClass.QUOTA, ErrorClass.TRANSIENT, ErrorClass.GONE) and has_next:
        return FallBack(reason=cls.value)
    code = {
        ErrorClass.REFUSED: "refused",
        ErrorClass.QUOTA: "quota",
        ErrorClass.TRANSIENT: "upstream_unavailable",
        ErrorClass.INVALID: "upstream_invalid",
        ErrorClass.TIMEOUT: "timeout",
        ErrorClass.GONE: "model_gone",
    }[cls]
    return Fail(code=code, message=user_message(error, model, suggest_fallback=suggest_fallback))
