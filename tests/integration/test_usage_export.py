"""``GET /v1/usage/export.csv``: the usage lines as CSV, paged from the database,
within the days asked for, with credits and the money they stand for."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reelgate.api import routes_usage
from reelgate.engine.worker import Worker
from tests.conftest import wait_for_status

JOB = {"model": "local", "duration_seconds": 1, "resolution": "360p"}


async def test_every_job_of_the_days_asked_for_is_a_line(
    client: httpx.AsyncClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_usage, "EXPORT_PAGE", 2)  # three jobs: two pages
    ids = []
    for i in range(3):
        answer = await client.post("/v1/videos", json={**JOB, "prompt": f"line {i}"})
        ids.append(answer.json()["id"])
    for job_id in ids:
        await wait_for_status(client, job_id, {"completed"})

    answer = await client.get("/v1/usage/export.csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert tuple(rows[0]) == routes_usage.EXPORT_COLUMNS
    assert [r["job_id"] for r in rows] == list(reversed(ids))  # newest first
    for r in rows:
        assert (r["status"], r["model"], r["seconds"]) == ("completed", "local", "1")
        assert (r["cost_credits"], r["cost_millicredits"]) == ("1.000", "1000")
        assert (r["cost_money"], r["currency"]) == ("0.01", "USD")

    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    none = await client.get("/v1/usage/export.csv", params={"start": yesterday, "end": yesterday})
    assert none.status_code == 200 and none.text.strip().count("\n") == 0  # the header only
    backwards = await client.get(
        "/v1/usage/export.csv", params={"start": "2026-12-02", "end": "2026-12-01"}
    )
    assert backwards.status_code == 400 and backwards.json()["error"]["param"] == "end"
    for bad in ("0", "2026-13-40"):  # a Unix time is no day; nor is a 13th month
        answer = await client.get("/v1/usage/export.csv", params={"end": bad})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "end"


def test_a_cell_a_spreadsheet_would_run_is_quoted() -> None:
    assert routes_usage._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert routes_usage._cell("@SUM(A1)") == "'@SUM(A1)"
    assert routes_usage._cell("-1.5") == "-1.5" and routes_usage._cell(None) == ""
