from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reelgate.engine import progress
from reelgate.engine.policy import MAX_TRANSIENT_RETRIES, Fail, FallBack, Retry, decide
from reelgate.errors import InvalidRequest, QuotaExceeded, Refused, TransientError, UpstreamTimeout


def test_refusal_fails_at_once_even_with_a_fallback() -> None:
    d = decide(Refused("prompt blocked", flagged="prompt"), retries=0, has_next=True, model="m")
    assert isinstance(d, Fail)
    assert d.code == "refused"
    assert "Reword" in d.message and "prompt was flagged" in d.message


def test_quota_falls_back_when_the_chain_has_a_next_model() -> None:
    assert isinstance(decide(QuotaExceeded("429"), retries=0, has_next=True, model="m"), FallBack)
    d = decide(QuotaExceeded("429"), retries=0, has_next=False, model="m")
    assert isinstance(d, Fail) and d.code == "quota"


def test_transient_retries_then_falls_back_then_fails() -> None:
    assert isinstance(decide(TransientError("503"), retries=0, has_next=True, model="m"), Retry)
    last = MAX_TRANSIENT_RETRIES
    assert isinstance(
        decide(TransientError("503"), retries=last, has_next=True, model="m"), FallBack
    )
    d = decide(TransientError("503"), retries=last, has_next=False, model="m")
    assert isinstance(d, Fail) and d.code == "upstream_unavailable"


def test_retry_honours_retry_after() -> None:
    d = decide(TransientError("503", retry_after=30.0), retries=0, has_next=False, model="m")
    assert isinstance(d, Retry) and d.delay_seconds >= 30.0


def test_invalid_and_timeout_fail() -> None:
    d1 = decide(InvalidRequest("bad"), retries=0, has_next=True, model="m")
    d2 = decide(UpstreamTimeout("late"), retries=0, has_next=True, model="m")
    assert isinstance(d1, Fail) and d1.code == "upstream_invalid"
    assert isinstance(d2, Fail) and d2.code == "timeout"


@given(
    st.lists(st.tuples(st.one_of(st.none(), st.integers(-10, 150)), st.floats(0, 1e5)), max_size=50)
)
def test_progress_never_decreases_and_stays_below_100(
    polls: list[tuple[int | None, float]],
) -> None:
    current = 0
    for reported, elapsed in polls:
        nxt = progress.forward(current, progress.running_progress(reported, elapsed, 60.0))
        assert current <= nxt <= 99
        current = nxt


def test_estimate_rises_with_elapsed_time() -> None:
    early = progress.running_progress(None, 5, 60)
    late = progress.running_progress(None, 60, 60)
    assert progress.RUN_LO <= early < late < progress.RUN_HI


def test_fault_keywords_can_target_one_provider() -> None:
    from reelgate.emulators.base import faults_in

    prompt = "a fox [fault:quota@veo] [fault:slow]"
    assert faults_in(prompt, "veo") == {"quota", "slow"}
    assert faults_in(prompt, "grok") == {"slow"}


def test_advice_names_only_what_the_endpoint_takes() -> None:
    """The media-video-from-text endpoint takes no fallback list: never suggest one."""
    native = decide(QuotaExceeded("429"), retries=0, has_next=False, model="m")
    service = decide(
        QuotaExceeded("429"), retries=0, has_next=False, model="m", suggest_fallback=False
    )
    assert isinstance(native, Fail) and isinstance(service, Fail)
    assert "fallback" in native.message
    assert "fallback" not in service.message
    lost = decide(
        TransientError("lost"),
        retries=0,
        has_next=False,
        model="m",
        may_duplicate=True,
        suggest_fallback=False,
    )
    assert isinstance(lost, Fail) and lost.code == "upstream_unknown"
    assert "fallback" not in lost.message and "not billed" in lost.message
