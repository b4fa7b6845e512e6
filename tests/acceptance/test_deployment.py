"""The layout of docs/deploy.md, proved: two ``reelgate api`` and two ``reelgate worker``
processes on PostgreSQL, Redis (rate limits) and S3 (moto's server mode), with a
webhook receiver that refuses for its first seconds. Jobs are pushed through while
every process is restarted in turn (SIGTERM and SIGKILL); then no job, no credit and
no webhook event may be missing. The figures (events, attempts, duplicates, lost) are
printed for the issue's closing note."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reelgate.webhooks.store import event_id
from tests.acceptance.conftest import Procs, process_env
from tests.conftest import free_port
from tests.receiver import Receiver, running_receiver

KEY = "rg_deployment_key_abcdefghijklmnopqrstuvwxyz"
JOBS = 24
TERMINAL = {"completed", "failed", "canceled"}


def _redis_url() -> str:
    url = os.environ.get("REELGATE_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but REELGATE_TEST_REDIS_URL is unset")
        pytest.skip("REELGATE_TEST_REDIS_URL not set")
    return url


def _healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} never became ready")


class Cluster:
    """Two APIs and two workers, each restartable by name."""

    def __init__(self, procs: Procs, ports: dict[str, int]) -> None:
        self.procs = procs
        self.ports = ports
        self.current: dict[str, Any] = {}
        self.restarts: list[str] = []

    def start(self, name: str) -> None:
        if name.startswith("api"):
            self.current[name] = self.procs.start(
                "api", "--port", str(self.ports[name]), name=f"{name}-{len(self.restarts)}"
            )
            _healthy(self.base(name))
        else:
            self.current[name] = self.procs.start("worker", name=f"{name}-{len(self.restarts)}")

    def base(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def restart(self, name: str, how: signal.Signals) -> None:
        proc = self.current[name]
        proc.send_signal(how)
        proc.wait(timeout=60)
        self.restarts.append(f"{name}:{how.name}")
        self.start(name)


def _post(cluster: Cluster, path: str, body: dict[str, Any], key: str) -> httpx.Response:
    """POST with an Idempotency-Key to whichever API answers: a request cut by a
    restart is sent again, to the other API, with the same key (exactly one job)."""
    for attempt in range(40):
        name = ("api1", "api2")[attempt % 2]
        try:
            answer = httpx.post(
                f"{cluster.base(name)}{path}",
                json=body,
                headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": key},
                timeout=10,
            )
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if answer.status_code in (409, 503):  # the key in flight elsewhere, a DB blip
            time.sleep(0.2)
            continue
        return answer
    raise AssertionError(f"POST {path} never answered")


def _get(cluster: Cluster, path: str) -> dict[str, Any]:
    for attempt in range(40):
        name = ("api1", "api2")[attempt % 2]
        try:
            answer = httpx.get(
                f"{cluster.base(name)}{path}",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=10,
            )
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.2)
    raise AssertionError(f"GET {path} never answered")


async def _rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def test_rolling_restarts_lose_no_job_credit_or_webhook_event(
    tmp_path: Path, procs: Procs, pg_url: str, moto_endpoint: str
) -> None:
    redis_url = _redis_url()
    bucket = f"rg-deploy-{uuid.uuid4().hex[:10]}"
    creds = {"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": "s3-test-secret"}
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket=bucket
    )
    # refuses the first dozen deliveries it gets: those must be retried
    arrivals = itertools.count()
    receiver = Receiver(script=lambda _r, _seen: 503 if next(arrivals) < 12 else 204)
    with running_receiver(receiver):
        assert receiver.server is not None
        ports = {"api1": free_port(), "api2": free_port()}
        procs.env = process_env(
            data_dir=str(tmp_path / "data"),
            dev_api_key=KEY,
            database_url=pg_url,
            redis_url=redis_url,
            rate_limit="100000/minute",
            storage_url=f"s3://{bucket}/reelgate",
            storage_options=json.dumps(
                {
                    "aws_endpoint": moto_endpoint,
                    "aws_region": "us-east-1",
                    "aws_allow_http": "true",
                    **creds,
                }
            ),
            public_url=f"http://127.0.0.1:{ports['api1']}",
            fetch_allow_private='["127.0.0.0/8"]',
            fetch_allow_ports=json.dumps([receiver.server.port]),
            webhook_poll_seconds="0.1",
            webhook_retry_base_seconds="0.5",
            lease_seconds="4",
            idle_poll_seconds="1",
            worker_concurrency="4",
            log_format="json",
        )
        cluster = Cluster(procs, ports)
        for name in ("api1", "api2", "w1", "w2"):
            cluster.start(name)
        account = _get(cluster, "/v1/balance")["account_id"]
        endpoint = _post(
            cluster,
            f"/v1/admin/accounts/{account}/webhooks",
            {"url": f"{receiver.url}/all"},
            "endpoint-1",
        ).json()
        secret = endpoint["secret"]
        start_balance = _get(cluster, "/v1/balance")

        plan = itertools.cycle(
            [
                ("api1", signal.SIGTERM),
                ("w1", signal.SIGKILL),
                ("api2", signal.SIGKILL),
                ("w2", signal.SIGTERM),
                ("w1", signal.SIGTERM),
                ("api1", signal.SIGKILL),
                ("w2", signal.SIGKILL),
            ]
        )
        submitted: list[str] = []
        canceled: set[str] = set()
        started = time.monotonic()
        for i in range(JOBS):
            body: dict[str, Any] = {
                "model": "local",
                "prompt": f"clip {i}",
                "duration_seconds": 1,
                "resolution": "360p",
            }
            if i % 3 == 0:
                body["webhook_url"] = f"{receiver.url}/req"
            answer = _post(cluster, "/v1/videos", body, f"job-{i}")
            assert answer.status_code == 202, answer.text
            submitted.append(answer.json()["id"])
            if i % 8 == 5:
                job_id = submitted[-1]
                cut = _post(cluster, f"/v1/videos/{job_id}/cancel", {}, f"cancel-{i}")
                if cut.status_code == 200:
                    canceled.add(job_id)
            if i % 4 == 3:
                cluster.restart(*next(plan))

        # every job reaches an end, whatever was restarted under it
        final: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 300
        while len(final) < len(submitted) and time.monotonic() < deadline:
            for job_id in submitted:
                if job_id not in final:
                    job = _get(cluster, f"/v1/videos/{job_id}")
                    if job["status"] in TERMINAL:
                        final[job_id] = job
            time.sleep(0.3)
        took = time.monotonic() - started
        assert len(final) == len(submitted), f"not final: {set(submitted) - set(final)}"

        # every event that happened is delivered to each target that wanted it
        events = asyncio.run(
            _rows(
                pg_url,
                "SELECT e.job_id, e.seq, e.type, j.webhook_url FROM job_events e "
                "JOIN jobs j ON j.id = e.job_id WHERE e.type <> 'video.progress'",
            )
        )
        expected = {(event_id(r["job_id"], r["seq"]), "/all") for r in events} | {
            (event_id(r["job_id"], r["seq"]), "/req") for r in events if r["webhook_url"]
        }

        def delivered() -> set[tuple[str, str]]:
            return {(r.event["id"], r.path) for r in receiver.accepted()}

        deadline = time.monotonic() + 120
        while not expected <= delivered() and time.monotonic() < deadline:
            time.sleep(0.2)
        lost = expected - delivered()
        for r in receiver.accepted("/all"):
            r.verify(secret)
        wanted = [r for r in receiver.events() if (r.event["id"], r.path) in expected]
        accepted_ids = Counter(r.msg_id for r in wanted if r.answered < 300)
        duplicates = sum(n - 1 for n in accepted_ids.values() if n > 1)
        attempts = len(wanted)
        refused = sum(1 for r in wanted if r.answered == 503)

        # credits: nothing held, and the balance moved by exactly what was delivered
        end_balance = _get(cluster, "/v1/balance")
        scrape = httpx.get(f"{cluster.base('api2')}/metrics", timeout=10).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scrape)
            for s in family.samples
        }
        ledger = asyncio.run(
            _rows(
                pg_url,
                "SELECT a.balance, a.held, coalesce(sum(l.balance_delta), 0) AS ledger, "
                "coalesce(sum(l.held_delta), 0) AS ledger_held FROM accounts a "
                f"LEFT JOIN ledger l ON l.account_id = a.id WHERE a.id = '{account}' "
                "GROUP BY a.balance, a.held",
            )
        )[0]

    statuses = Counter(job["status"] for job in final.values())
    charged = sum(int(job["cost"]["millicredits"]) for job in final.values() if job["cost"])
    print(
        f"\ndeployment: {len(submitted)} jobs in {took:.1f}s, statuses {dict(statuses)}, "
        f"restarts {cluster.restarts}\n"
        f"webhooks: events {len(expected)}, attempts {attempts} ({refused} refused), "
        f"accepted {sum(accepted_ids.values())}, duplicates {duplicates}, lost {len(lost)}\n"
        f"credits: {start_balance['balance']} -> {end_balance['balance']}, "
        f"charged {charged} millicredits, held {end_balance.get('held')}"
    )
    assert not lost, f"{len(lost)} webhook events never delivered: {sorted(lost)[:5]}"
    assert statuses["completed"] + statuses["canceled"] == len(submitted), statuses
    assert canceled <= {j for j, job in final.items() if job["status"] == "canceled"} | {
        j for j, job in final.items() if job["status"] == "completed"
    }
    assert ledger["held"] == 0 and ledger["ledger_held"] == 0
    assert ledger["balance"] == ledger["ledger"]  # the ledger explains the balance
    start_milli = int(start_balance["millicredits"]["balance"])
    assert ledger["balance"] == start_milli - charged
    assert refused > 0 and attempts >= len(expected) + refused  # refusals were retried
    # the scrape of one API sums every process of the host, the killed ones included; a
    # worker killed between a job's commit and its count loses that one count
    finished = sum(
        v
        for (n, labels), v in samples.items()
        if n == "reelgate_jobs_finished_total" and dict(labels)["status"] == "completed"
    )
    killed_workers = sum(1 for r in cluster.restarts if r.startswith("w") and "KILL" in r)
    assert statuses["completed"] - killed_workers <= finished <= statuses["completed"]
    assert samples[("reelgate_queue_due", ())] == 0
    assert samples[("reelgate_credits_held_millicredits", ())] == 0
    assert len(cluster.restarts) == JOBS // 4
    # no process logged a secret: the API key, the webhook secret, the S3 secret key
    logs = "".join(p.read_text(errors="replace") for p in procs.logs.glob("*.log"))
    assert '"request_id"' in logs  # JSON lines were written
    for secret_value in (KEY, secret, creds["aws_secret_access_key"], "whsec_"):
        assert secret_value not in logs
