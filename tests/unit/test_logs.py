"""``reelgate.logs``: one JSON object per line with the request's and the job's context,
a human format with the same context, and request ids that are never taken raw."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from dataclasses import replace

import pytest

from reelgate.job import JobState
from reelgate.logs import (
    ContextFilter,
    JsonFormatter,
    configure,
    job_context,
    request_id,
    usable_request_id,
)
from tests.values import a_job


def _capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    configure("info", fmt)  # type: ignore[arg-type]
    root = logging.getLogger()
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return logging.getLogger("reelgate.test"), stream


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_the_request_and_job_context_that_is_set() -> None:
    log, out = _capture("json")
    log.info("outside anything")
    token = request_id.set("req_abc")
    try:
        running = a_job("video_1", account_id="acct_1", chain=("sora-2",), attempt_no=2)
        with job_context(replace(running, state=JobState.RUNNING)):
            log.warning("step %s", "poll")
    finally:
        request_id.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "outside anything" and "job_id" not in first
    assert {k: second[k] for k in ("level", "logger", "message")} == {
        "level": "warning",
        "logger": "reelgate.test",
        "message": "step poll",
    }
    assert (second["request_id"], second["job_id"], second["account_id"]) == (
        "req_abc",
        "video_1",
        "acct_1",
    )
    assert (second["model"], second["attempt"]) == ("sora-2", 2)
    assert "ValueError: boom" in third["exc"] and "request_id" not in third


def test_the_text_format_ends_a_line_with_its_context() -> None:
    log, out = _capture("text")
    with job_context(a_job("video_9", account_id="acct_9", chain=("local",))):
        log.info("rendered")
    line = out.getvalue().strip()
    assert line.endswith("rendered [job_id=video_9 account_id=acct_9 model=local attempt=1]")


async def test_the_job_context_follows_each_step_through_its_awaits() -> None:
    seen: dict[str, str | None] = {}
    record_filter = ContextFilter()

    async def step(job_id: str) -> None:
        with job_context(a_job(job_id)):
            await asyncio.sleep(0.01)
            record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
            record_filter.filter(record)
            seen[job_id] = record.job_id  # type: ignore[attr-defined]

    await asyncio.gather(step("video_a"), step("video_b"))
    assert seen == {"video_a": "video_a", "video_b": "video_b"}


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_X.y:z", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("new\nline", False),
        ('quote"', False),
        ("", False),
        (None, False),
    ],
)
def test_a_request_id_is_the_clients_only_when_it_is_a_plain_token(
    sent: str | None, kept: bool
) -> None:
    got = usable_request_id(sent)
    assert (got == sent) is kept
    if not kept:
        assert got.startswith("req_") and len(got) == 24


def test_json_formatter_writes_one_line_even_for_multiline_messages() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb", None, None)
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["message"] == "a\nb"


def test_a_queued_jobs_step_works_on_its_next_attempt() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("reelgate.test.attempts")
    log.addHandler(handler)
    try:
        with job_context(a_job("video_q", state=JobState.QUEUED, attempt_no=1)):
            log.warning("falling back")  # after one failed create: the next is attempt 2
        with job_context(a_job("video_r", state=JobState.RUNNING, attempt_no=1)):
            log.warning("polling")
    finally:
        log.removeHandler(handler)
    queued, running = (json.loads(line) for line in out.getvalue().splitlines())
    assert (queued["attempt"], running["attempt"]) == (2, 1)
