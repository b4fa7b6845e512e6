"""Logging for every reelgate process: a human format or one JSON object per line
(``REELGATE_LOG_FORMAT``), and the context every line carries.

The context lives in context variables, so it follows a request or a job step through
every ``await`` without being passed along: ``request_id`` is set by the API for each
request (the client's ``X-Request-Id`` when it sent a usable one, else a new one, and
echoed in the answer), and ``job`` by the worker for each step (``job_id``,
``account_id``, ``model``, ``attempt``). ``ContextFilter`` copies them onto each
record; ``JsonFormatter`` writes a record and its context as one line. Secrets never
reach these fields: ids and model names only (and messages keep to the rules of
``cli.main``: no query strings, no request URLs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from reelgate.job import Job, JobState

__all__ = [
    "CONTEXT_FIELDS",
    "ContextFilter",
    "JobContext",
    "JsonFormatter",
    "LogFormat",
    "configure",
    "job_context",
    "new_request_id",
    "request_id",
    "usable_request_id",
]

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("request_id", "job_id", "account_id", "model", "attempt")

request_id: ContextVar[str | None] = ContextVar("reelgate_request_id", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: str
    account_id: str
    model: str
    attempt: int


_job: ContextVar[JobContext | None] = ContextVar("reelgate_job", default=None)


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex[:20]}"


def usable_request_id(sent: str | None) -> str:
    """The client's ``X-Request-Id`` if it is a plain token (letters, digits, ``._:-``,
    at most 128), else a new id: a header is never written to the log as it came."""
    if sent and _REQUEST_ID.fullmatch(sent):
        return sent
    return new_request_id()


@contextlib.contextmanager
def job_context(job: Job) -> Iterator[None]:
    """Every line logged inside (awaits included) is about this job: its model in the
    chain now, and the attempt this step works on (a queued job's next create is the
    next attempt; ``Job.attempt_no`` counts the creates sent)."""
    attempt = job.attempt_no + 1 if job.state is JobState.QUEUED else max(1, job.attempt_no)
    token = _job.set(JobContext(job.id, job.account_id, job.current_model, attempt))
    try:
        yield
    finally:
        _job.reset(token)


class ContextFilter(logging.Filter):
    """Puts the request's and the job's context on every record (None where unset)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        job = _job.get()
        record.job_id = job.job_id if job else None
        record.account_id = job.account_id if job else None
        record.model = job.model if job else None
        record.attempt = job.attempt if job else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context that is set,
    and the traceback of an exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """The human format, with the context that is set in brackets at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        )
        return f"{text} [{context}]" if context else text


def configure(level: str, fmt: LogFormat = "text") -> None:
    """The root logger's one handler (stderr), in ``fmt``, carrying the context."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
