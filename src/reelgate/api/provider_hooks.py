"""``POST /v1/provider-hooks/{kind}/{job_id}`` and ``/v1/provider-hooks/{kind}``: a
provider calling back about a job.

Providers that can call back per job (``providers.base.ReceivesWebhooks``: fal's
``fal_webhook``, Replicate's ``webhook``) get a per-job URL with the create
(``engine.callbacks``); a provider whose calls go to one endpoint registered with it
(OpenAI's project webhooks, ``video.completed`` / ``video.failed``) calls
``/v1/provider-hooks/{kind}`` and names its upstream job. A call is acted on only when

1. on a per-job URL, the URL's own signature is this gateway's for this provider and
   job (403 ``invalid_signature`` otherwise: nothing is read further);
2. the provider's signature verifies as it documents, with a timestamp within five
   minutes (401 ``invalid_webhook`` otherwise);
3. its delivery id was not seen before (a replay answers 200 ``duplicate``), and it
   is about the job's current upstream job while that job runs.

Then the job is made due at once. A call that names a finished video (its body is
signed with the rest) hands it to the worker, which mirrors it without polling; any
other call (a failure, say) makes the worker poll now, and the poll classifies it.
Nothing here changes a job otherwise, and every answer is JSON.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from reelgate.engine.callbacks import HOOK_PATH, verify_callback
from reelgate.engine.planner import finished_result
from reelgate.errors import Forbidden
from reelgate.job import JobResult
from reelgate.logs import job_context
from reelgate.providers.base import (
    ReceivesWebhooks,
    WebhookCall,
    WebhookRejected,
    WebhookUnverifiable,
)
from reelgate.runtime import Runtime
from reelgate.store.jobs import now_ms

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter()


def _answer(status: int, code: str, message: str, *, retry_after: int = 0) -> JSONResponse:
    if status >= 400:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        body = {"error": {"code": code, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse({"status": code, "message": message}, status_code=status)


def _pushed(call: WebhookCall) -> JobResult | None:
    """The finished video a verified call names, as the running job's result."""
    return finished_result(call.result) if call.result is not None else None


async def _verified(
    rt: Runtime, request: Request, kind: str, *, per_job: bool
) -> WebhookCall | JSONResponse:
    """The provider's verified call, or the answer that refuses it."""
    provider = rt.providers.get(kind)
    if not (
        isinstance(provider, ReceivesWebhooks)
        and provider.receives_webhooks
        and provider.per_job_callbacks == per_job
    ):
        where = "per job" if per_job else "at this endpoint"
        return _answer(404, "not_found", f"provider {kind!r} does not call back {where}")
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        return await provider.verify_webhook(headers, body, time.time())
    except WebhookUnverifiable as exc:
        log.warning("provider hook from %s not checked now: %s", kind, exc.reason)
        return _answer(
            503,
            "webhook_unverifiable",
            f"This call cannot be checked now: {exc.reason}.",
            retry_after=30,
        )
    except WebhookRejected as exc:
        log.warning("provider hook from %s refused: %s", kind, exc.reason)
        return _answer(401, "invalid_webhook", f"This call was not accepted: {exc.reason}.")


async def _act(rt: Runtime, kind: str, job_id: str | None, call: WebhookCall) -> JSONResponse:
    """Record the delivery and, when it is about a job's current upstream job, make that
    job due now (with the video the call names) in the same transaction."""
    now = now_ms()
    async with rt.store.begin() as tx:
        if job_id is None:
            job_id = await tx.running_job_for(call.upstream_id) if call.final else None
        job = await tx.get_job(job_id) if job_id is not None else None
        if job is not None and job.attempts and job.attempts[-1].create_pending:
            # The create's answer is not stored yet (the provider was quicker than our
            # write): not recorded, so the provider's retry of this delivery is taken.
            return _answer(
                503,
                "not_ready",
                "The job's create is still being recorded; deliver this call again.",
                retry_after=1,
            )
        if not await tx.record_delivery(call.delivery_id, kind, job_id or "", now):
            return _answer(200, "duplicate", "This delivery was received before; nothing changed.")
        current = job.upstream_id if job is not None else None
        woken = (
            job is not None
            and current is not None
            and call.is_about(current)
            and (not job.attempts or job.attempts[-1].provider in (None, kind))
        )
        if woken and job is not None and current is not None:
            woken = await tx.poll_now(job.id, current, now, _pushed(call))
        if woken and job is not None:
            await tx.wake(job.id)
    if not woken:
        log.info(
            "call from %s about %s changed nothing (job %s: %s, upstream job %s)",
            kind,
            call.upstream_id,
            job_id,
            job.state.value if job is not None else "none running it",
            current,
        )
        return _answer(200, "ignored", "No job is running that upstream job now; nothing changed.")
    rt.wakeup.notify()
    assert job is not None  # woken
    with job_context(job):
        log.info("job %s: %s called back about %s; polling it now", job.id, kind, call.upstream_id)
    return _answer(202, "accepted", "The job is polled now.")


@router.post(HOOK_PATH + "/{kind}/{job_id}", include_in_schema=False)
async def provider_hook(request: Request, kind: str, job_id: str) -> JSONResponse:
    """A call on the per-job URL that went with the create (fal, Replicate)."""
    rt: Runtime = request.app.state.runtime
    try:
        verify_callback(
            kind,
            job_id,
            request.query_params.get("expires", ""),
            request.query_params.get("signature", ""),
            rt.signing_secret,
        )
    except Forbidden as exc:
        return _answer(exc.http_status, exc.code, exc.message)
    call = await _verified(rt, request, kind, per_job=True)
    if isinstance(call, JSONResponse):
        return call
    return await _act(rt, kind, job_id, call)


@router.post(HOOK_PATH + "/{kind}", include_in_schema=False)
async def provider_project_hook(request: Request, kind: str) -> JSONResponse:
    """A call to the one endpoint an operator registered with the provider (OpenAI's
    project webhooks): only the provider's own signature vouches for it, and it names
    the upstream job, which finds reelgate's job."""
    rt: Runtime = request.app.state.runtime
    call = await _verified(rt, request, kind, per_job=False)
    if isinstance(call, JSONResponse):
        return call
    return await _act(rt, kind, None, call)
