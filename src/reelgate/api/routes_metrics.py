"""``GET /metrics``: Prometheus text format (``reelgate.metrics``), by setting open to
any caller, behind a token, or not served at all."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reelgate import metrics
from reelgate.errors import NotFound, Unauthorized
from reelgate.runtime import Runtime
from reelgate.store.jobs import now_ms

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _check_access(rt: Runtime, request: Request) -> None:
    s = rt.settings
    if s.metrics == "off" or not metrics.enabled():
        raise NotFound("Metrics are off on this gateway (setting: metrics).")
    if s.metrics == "token":
        assert s.metrics_token is not None  # the settings refuse token mode without one
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        expected = s.metrics_token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(
                "GET /metrics needs Authorization: Bearer <metrics_token> on this gateway."
            )


@router.get("/metrics")
async def scrape(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    _check_access(rt, request)
    snap = await metrics.snapshot(rt.db, now_ms())
    body, content_type = metrics.exposition(snap)
    return Response(body, media_type=content_type)
