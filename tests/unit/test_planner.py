"""The planner: every outcome of a step, decided without a database, a clock or I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgate.catalog import load_catalog
from reelgate.engine import planner as p
from reelgate.engine.pacing import Pace
from reelgate.engine.policy import MAX_TRANSIENT_RETRIES
from reelgate.errors import (
    InvalidRequest,
    ProviderError,
    QuotaExceeded,
    Refused,
    TransientError,
)
from reelgate.job import (
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobResult,
    JobState,
    MirrorStatus,
    PublicStatus,
)
from reelgate.providers.base import ResultLocation, UpstreamState, UpstreamStatus
from tests.values import NOW, a_job

CATALOG = load_catalog()
SPEC = CATALOG.get("local")
PRICE = SPEC.price_per_second


def rules(**overrides: object) -> p.Rules:
    base = p.Rules(
        spec=SPEC,
        price=lambda model, resolution, seconds: PRICE * seconds,
        idempotent_create=False,
        uniform=lambda lo, hi: hi,  # the longest wait: deterministic
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def job(**overrides: object) -> Job:
    values: dict[str, object] = {"chain": ("local",), "created_at": NOW - 1000}
    values.update(hold_id="hold_1", updated_at=NOW - 1000)
    return a_job(**{**values, **overrides})


def submitting(**overrides: object) -> Job:
    attempt = Attempt(
        model="local", started_at=NOW - 500, create_pending=True, create_sent_at=NOW - 500
    )
    values: dict[str, object] = {
        "state": JobState.SUBMITTING,
        "attempt_no": 1,
        "attempts": (attempt,),
        "progress": 1,
        "active_provider": "local",
    }
    values.update(overrides)
    return job(**values)


def running(**overrides: object) -> Job:
    attempt = Attempt(
        model="local", started_at=NOW - 500, outcome=AttemptOutcome.RUNNING, upstream_id="up_1"
    )
    values: dict[str, object] = {
        "state": JobState.RUNNING,
        "attempt_no": 1,
        "attempts": (attempt,),
        "upstream_id": "up_1",
        "running_since": NOW - 500,
        "progress": 5,
        "active_provider": "local",
    }
    values.update(overrides)
    return job(**values)


def mirroring(**overrides: object) -> Job:
    values: dict[str, object] = {
        "state": JobState.MIRRORING,
        "result": JobResult(upstream_url="local://up_1.mp4", duration_seconds=4.0),
        "progress": 90,
    }
    values.update(overrides)
    return running(**values)


COPY = p.StoredCopy(
    key="videos/acct_1/video_1.mp4",
    bytes=1000,
    sha256="ab" * 32,
    duration_seconds=3.2,
    width=1280,
    height=720,
    content_type="video/mp4",
    has_audio=True,
)


def test_a_queued_job_is_marked_sending_with_a_new_attempt_and_keeps_its_lease() -> None:
    t = p.plan(job(), p.Sending(), NOW, rules())
    assert t.job.state is JobState.SUBMITTING and t.job.attempt_no == 1
    assert t.job.attempts[-1].create_pending and t.job.attempts[-1].create_sent_at == NOW
    assert t.job.active_provider == "local"
    assert t.release is False and t.settle is None


def test_a_resend_marks_the_same_attempt_and_may_count_as_a_retry() -> None:
    before = submitting(attempts=(replace(submitting().attempts[0], create_pending=False),))
    t = p.plan(before, p.Sending(count=True), NOW, rules())
    assert len(t.job.attempts) == 1 and t.job.attempts[0].create_pending
    assert t.job.retries == 1 and t.job.attempt_no == 1


def test_a_create_answer_starts_polling() -> None:
    t = p.plan(submitting(), p.Created("up_9"), NOW, rules())
    assert t.job.state is JobState.RUNNING and t.job.upstream_id == "up_9"
    last = t.job.attempts[-1]
    assert (last.upstream_id, last.outcome, last.create_pending) == (
        "up_9",
        AttemptOutcome.RUNNING,
        False,
    )
    # nothing learned yet: no later than the model's poll interval (jitter at its top)
    stand_in = min(SPEC.typical_seconds, SPEC.poll_interval_seconds)
    first = max(0.5, stand_in + min(0.1 * stand_in, 0.5))
    assert t.job.next_run_at == NOW + int(first * 1000)
    quiet = Pace(median=1.0, early=0.75, late=1.5, longest=2.0, tells=False)
    learned = p.plan(submitting(), p.Created("up_9"), NOW, rules(pace=quiet))
    assert learned.job.next_run_at == NOW + 1100  # its median: nothing will say when
    telling = replace(quiet, tells=True)
    early = p.plan(submitting(), p.Created("up_9"), NOW, rules(pace=telling))
    assert early.job.next_run_at == NOW + 825  # early: the answer will say when
    assert t.job.progress == 5


def test_an_adopted_upstream_job_is_marked_so() -> None:
    t = p.plan(submitting(), p.Created("up_9", adopted=True), NOW, rules())
    assert t.job.attempts[-1].adopted


def test_a_poll_moves_progress_forward_only() -> None:
    before = running(progress=40)
    t = p.plan(before, p.Polled(UpstreamStatus(UpstreamState.RUNNING, progress=10)), NOW, rules())
    assert t.job.progress == 40 and t.job.poll_count == 1
    t = p.plan(before, p.Polled(UpstreamStatus(UpstreamState.RUNNING, progress=80)), NOW, rules())
    assert 40 < t.job.progress <= 90


def test_a_finished_upstream_job_moves_to_mirroring_with_the_upstreams_values() -> None:
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    status = UpstreamStatus(
        UpstreamState.SUCCEEDED,
        result=ResultLocation(url="https://cdn/x.mp4", expires_at=expires),
        duration_seconds=4.0,
    )
    t = p.plan(running(), p.Polled(status), NOW, rules())
    assert t.job.state is JobState.MIRRORING and t.job.next_run_at == NOW
    assert t.job.result == JobResult(
        upstream_url="https://cdn/x.mp4",
        duration_seconds=4.0,
        upstream_expires_at=int(expires.timestamp() * 1000),
        content_type="video/mp4",
    )


def test_a_success_without_a_result_is_a_transient_error() -> None:
    status = UpstreamStatus(UpstreamState.SUCCEEDED)
    t = p.plan(running(), p.Polled(status), NOW, rules())
    assert t.job.state is JobState.RUNNING and t.job.retries == 1


def test_a_stored_copy_completes_and_bills_the_seconds_it_measures() -> None:
    t = p.plan(mirroring(), p.Mirrored(COPY), NOW, rules())
    assert t.job.state is JobState.COMPLETED and t.job.progress == 100
    assert t.job.units_consumed == 3 and t.job.cost == 3 * PRICE == t.settle
    assert t.job.result is not None and t.job.result.mirror_status is MirrorStatus.STORED
    assert t.job.result.duration_seconds == 4.0  # the upstream's word stays
    assert t.job.result.measured_duration_seconds == 3.2
    assert t.job.delivered_by == "local" and t.job.next_run_at is None
    assert t.job.attempts[-1].outcome is AttemptOutcome.COMPLETED


def test_a_copy_that_cannot_be_measured_bills_the_providers_reported_seconds() -> None:
    unmeasured = replace(COPY, duration_seconds=None)
    before = mirroring(result=JobResult(upstream_url="u", duration_seconds=2.4))
    t = p.plan(before, p.Mirrored(unmeasured), NOW, rules())
    assert t.job.units_consumed == 2 and t.settle == 2 * PRICE


def test_nothing_reported_or_measured_bills_what_was_asked() -> None:
    unmeasured = replace(COPY, duration_seconds=None)
    before = mirroring(result=JobResult(upstream_url="u"))
    t = p.plan(before, p.Mirrored(unmeasured), NOW, rules())
    assert t.job.units_consumed == 4


def test_a_longer_video_than_asked_bills_only_what_was_asked() -> None:
    t = p.plan(mirroring(), p.Mirrored(replace(COPY, duration_seconds=9.0)), NOW, rules())
    assert t.job.units_consumed == 4


def test_a_failed_mirror_is_retried_quickly_then_delivered_unmirrored_and_billed() -> None:
    t = p.plan(mirroring(), p.MirrorFailed("boom"), NOW, rules(mirror_quick_retries=1))
    assert t.job.state is JobState.MIRRORING and t.job.retries == 1 and t.settle is None
    assert t.job.next_run_at == NOW + 2000
    t = p.plan(t.job, p.MirrorFailed("boom"), NOW, rules(mirror_quick_retries=1))
    assert t.job.state is JobState.MIRRORING and t.job.completed_at == NOW
    assert t.job.status is PublicStatus.COMPLETED
    assert t.settle == 4 * PRICE  # the upstream reported 4 s
    assert t.job.result is not None and t.job.result.mirror_status is MirrorStatus.FAILED
    assert t.job.result.mirror_tries == 1
    assert t.job.next_run_at == t.job.result.mirror_retry_at == NOW + 30_000


def test_a_background_mirror_retry_never_bills_again() -> None:
    delivered = p.plan(mirroring(), p.MirrorFailed("x"), NOW, rules(mirror_quick_retries=0)).job
    later = NOW + 60_000
    t = p.plan(delivered, p.Mirrored(replace(COPY, duration_seconds=1.0)), later, rules())
    assert t.job.state is JobState.COMPLETED
    assert t.job.cost == delivered.cost and t.job.units_consumed == delivered.units_consumed
    assert t.job.completed_at == NOW


def test_the_mirror_is_given_up_once_the_upstream_link_expires() -> None:
    before = mirroring(result=JobResult(upstream_url="u", upstream_expires_at=NOW + 1000))
    t = p.plan(before, p.MirrorFailed("x"), NOW, rules(mirror_quick_retries=0))
    assert t.job.state is JobState.COMPLETED and t.job.next_run_at is None
    assert t.log is not None and "given up" in t.log


def test_a_final_mirror_failure_is_not_retried() -> None:
    t = p.plan(mirroring(), p.MirrorFailed("refused", final=True), NOW, rules())
    assert t.job.state is JobState.COMPLETED and t.job.retries == 0


def test_a_quota_error_falls_back_and_cools_the_deployment_down() -> None:
    before = running(chain=("local", "other"))
    error = QuotaExceeded("429", upstream_status=429, retry_after=30)
    t = p.plan(before, p.Failed(error), NOW, rules())
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1
    assert t.job.upstream_id is None and t.job.active_provider is None
    assert t.cancel_upstream  # the running upstream job is abandoned
    assert t.cooldown == p.Cooldown(p.deployment(SPEC, None), NOW + 30_000, "429")
    closed = t.job.attempts[-1]
    assert closed.outcome is AttemptOutcome.QUOTA and closed.ended_at == NOW
    assert closed.error == JobError("quota", "429", error_class="quota", upstream_status=429)


def test_quota_without_a_fallback_fails_unbilled() -> None:
    t = p.plan(running(), p.Failed(QuotaExceeded("429")), NOW, rules())
    assert t.job.state is JobState.FAILED and t.settle == 0 and t.job.cost == 0
    assert t.job.error is not None and t.job.error.code == "quota"
    assert t.cooldown is not None and t.cooldown.until == NOW + 60_000


def test_a_refusal_fails_at_once_even_with_a_fallback() -> None:
    t = p.plan(running(chain=("local", "other")), p.Failed(Refused("no")), NOW, rules())
    assert t.job.state is JobState.FAILED and t.job.error is not None
    assert t.job.error.code == "refused" and t.settle == 0


def test_a_transient_error_is_retried_with_backoff_then_falls_back() -> None:
    before = running(chain=("local", "other"))
    t = p.plan(before, p.Failed(TransientError("503")), NOW, rules())
    assert t.job.state is JobState.RUNNING and t.job.retries == 1
    assert t.job.next_run_at == NOW + 1000  # uniform(0, 1 s) at its top
    assert t.job.attempts[-1].last_error is not None
    spent = replace(before, retries=MAX_TRANSIENT_RETRIES)
    t = p.plan(spent, p.Failed(TransientError("503")), NOW, rules())
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1


def test_a_definite_answer_to_a_create_clears_its_in_flight_mark() -> None:
    t = p.plan(submitting(), p.Failed(TransientError("503")), NOW, rules())
    assert t.job.state is JobState.SUBMITTING and not t.job.attempts[-1].create_pending


@pytest.mark.parametrize(
    "error",
    [
        TransientError("the upstream job failed", terminal=True),
        InvalidRequest("bad frames", terminal=True),
    ],
)
def test_an_upstream_job_that_ended_failed_is_never_polled_again(error: ProviderError) -> None:
    with_next = p.plan(running(chain=("local", "other")), p.Failed(error), NOW, rules())
    alone = p.plan(running(), p.Failed(error), NOW, rules())
    for t in (with_next, alone):  # queued on the next model, or failed: never polled
        assert t.job.state in (JobState.QUEUED, JobState.FAILED)
    assert alone.job.state is JobState.FAILED and alone.settle == 0
    if isinstance(error, TransientError):  # a fault upstream: the next model may do it
        assert with_next.job.state is JobState.QUEUED and with_next.job.chain_index == 1


def test_the_same_error_from_a_job_still_running_upstream_is_retried() -> None:
    t = p.plan(running(), p.Failed(TransientError("502 on a poll")), NOW, rules())
    assert t.job.state is JobState.RUNNING and t.job.retries == 1


def test_an_unresolved_create_is_never_resent_and_is_listed_for_operators() -> None:
    listed = p.ListCreate("unknown", "no way to tell")
    t = p.plan(submitting(), p.Failed(TransientError("504"), unresolved=listed), NOW, rules())
    assert t.job.state is JobState.FAILED and t.job.error is not None
    assert t.job.error.code == "upstream_unknown" and t.settle == 0
    assert t.list_create == listed
    assert t.job.attempts[-1].outcome is AttemptOutcome.AMBIGUOUS
    fallback = p.plan(
        submitting(chain=("local", "other")),
        p.Failed(TransientError("504"), unresolved=listed),
        NOW,
        rules(),
    )
    assert fallback.job.state is JobState.QUEUED and fallback.list_create == listed


def test_a_cooling_deployment_is_skipped_without_a_new_cooldown() -> None:
    t = p.plan(job(chain=("local", "other")), p.Cooling(NOW + 45_000), NOW, rules())
    assert t.job.state is JobState.QUEUED and t.job.chain_index == 1
    assert t.cooldown is None
    assert t.job.attempts[-1].error is not None
    assert t.job.attempts[-1].error.code == "cooldown"
    assert "45 s" in t.job.attempts[-1].error.message


def test_at_capacity_looks_again_soon_but_never_past_the_deadline() -> None:
    t = p.plan(job(), p.AtCapacity(), NOW, rules())
    assert t.job.next_run_at == NOW + p.CAPACITY_WAIT_MS and t.job.state is JobState.QUEUED
    late = p.plan(job(deadline_at=NOW + 10), p.AtCapacity(), NOW, rules())
    assert late.job.next_run_at == NOW + 10


def test_a_deadline_fails_with_timeout_cancels_upstream_and_releases_the_hold() -> None:
    t = p.plan(running(), p.DeadlinePassed(), NOW, rules())
    assert t.job.state is JobState.FAILED and t.job.error is not None
    assert t.job.error.code == "timeout" and t.cancel_upstream and t.settle == 0
    assert t.job.attempts[-1].outcome is AttemptOutcome.TIMEOUT


def test_a_cancel_while_a_create_is_in_flight_lists_the_create_unless_it_dedupes() -> None:
    t = p.plan(submitting(), p.CancelRequested(), NOW, rules())
    assert t.job.state is JobState.CANCELED and t.settle == 0 and t.cancel_upstream
    assert t.list_create is not None and t.list_create.outcome == "unknown"
    deduped = p.plan(submitting(), p.CancelRequested(), NOW, rules(idempotent_create=True))
    assert deduped.list_create is None
    queued = p.plan(job(), p.CancelRequested(), NOW, rules())
    assert not queued.cancel_upstream and queued.list_create is None


def test_a_lost_create_search_waits_and_notes_why() -> None:
    note = JobError("create_answer_lost", "looking", error_class="transient")
    t = p.plan(submitting(), p.LookAgain(NOW + 5000, note, count=True), NOW, rules())
    assert t.job.next_run_at == NOW + 5000 and t.job.retries == 1
    assert t.job.attempts[-1].last_error == note and t.job.attempts[-1].create_pending


def test_a_stale_claim_only_clears_the_wake_up() -> None:
    done = job(state=JobState.COMPLETED, next_run_at=NOW)
    assert p.plan(done, p.Stale(), NOW, rules()).job == replace(done, next_run_at=None)


@given(
    reported=st.none() | st.floats(0.0, 30.0),
    measured=st.none() | st.floats(0.1, 30.0),
    asked=st.integers(1, 20),
)
def test_billing_never_exceeds_what_was_asked(
    reported: float | None, measured: float | None, asked: int
) -> None:
    before = mirroring(
        params=replace(job().params, duration_seconds=asked),
        result=JobResult(upstream_url="u", duration_seconds=reported),
    )
    t = p.plan(before, p.Mirrored(replace(COPY, duration_seconds=measured)), NOW, rules())
    assert t.job.units_consumed is not None and 1 <= t.job.units_consumed <= asked
    assert t.settle == t.job.units_consumed * PRICE


def test_an_upstreams_poll_after_hint_overrides_the_schedule_within_bounds() -> None:
    """OpenAI answers ``openai-poll-after-ms`` (openai-python ``videos.poll`` waits it)."""

    def after(hint: float | None, **kw: object) -> int:
        status = UpstreamStatus(UpstreamState.RUNNING, progress=10, poll_after_seconds=hint)
        t = p.plan(running(), p.Polled(status), NOW, rules(**kw))  # type: ignore[arg-type]
        assert t.job.next_run_at is not None
        return t.job.next_run_at - NOW

    scheduled = after(None)
    assert after(2.5) == 2_500 != scheduled
    assert after(0.0) == 500  # never a busy loop
    assert after(10_000.0) == 300_000  # nor a job forgotten
    # with a callback registered, the provider's call is what wakes the job
    assert after(2.5, callback_wait_seconds=300.0) == after(None, callback_wait_seconds=300.0)
