"""What the CLI's logging keeps out of the log: signed query strings and httpx's URLs."""

from __future__ import annotations

import logging

from reelgate.cli.main import _logging, _NoQueryStrings


def test_access_log_lines_lose_their_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "POST",
            "/v1/provider-hooks/fal/video_1?expires=9&signature=SECRETSIG",
            "1.1",
            202,
        ),
        None,
    )
    assert _NoQueryStrings().filter(record)
    line = record.getMessage()
    assert "SECRETSIG" not in line and "/v1/provider-hooks/fal/video_1?…" in line
    plain = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s %s %s", ("a", "GET", "/v1/models"), None
    )
    assert _NoQueryStrings().filter(plain) and plain.getMessage() == "a GET /v1/models"


def test_httpx_request_lines_are_not_logged_at_info() -> None:
    httpx_log, access = logging.getLogger("httpx"), logging.getLogger("uvicorn.access")
    level, filters = httpx_log.level, list(access.filters)
    try:
        _logging("info")
        assert not httpx_log.isEnabledFor(logging.INFO)
        assert any(isinstance(f, _NoQueryStrings) for f in access.filters)
    finally:
        httpx_log.setLevel(level)
        access.filters[:] = filters
