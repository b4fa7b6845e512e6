"""One error shape for every answer: ``{"error": {"code", "message", ...details}}``.

Stack traces and secrets never reach a client: unexpected exceptions become
a 500 with a request id the operator can find in the log, and a database
outage a 503 (both in ``api.middleware.ErrorBoundary``).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from reelgate import metrics
from reelgate.errors import ReelgateError
from reelgate.limits import retry_after_header

__all__ = ["error_response", "install_error_handlers"]


def error_response(
    http_status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    /,
    **details: Any,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=http_status, headers=headers)


_UNION_TAG = re.compile(r"(constrained-)?(str|int|float|bool|bytes)|function-\w+\[.*\]")
"""The member a pydantic union error names after the field (``cap.constrained-str``)."""


def _param_name(loc: tuple[Any, ...]) -> str:
    parts = [
        str(p)
        for p in loc
        if p not in ("body", "query", "path", "header") and not _UNION_TAG.fullmatch(str(p))
    ]
    return ".".join(parts) or "body"


async def _reelgate_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelgateError)
    metrics.refusal(exc.code)  # rate limits, credits and in-flight caps are counted
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
    headers |= retry_after_header(exc)
    return error_response(exc.http_status, exc.code, exc.message, headers or None, **exc.details)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": ""}
    param = _param_name(tuple(first.get("loc", ())))
    if first.get("type") == "extra_forbidden":
        message = f"Unknown field {param!r}: remove it (see the API reference at /docs)."
        code = "unknown_parameter"
    elif first.get("type") == "json_invalid":
        message = "The request body is not valid JSON."
        code = "invalid_json"
        param = "body"  # FastAPI's loc holds a character offset here
    else:
        message = f"{param}: {first.get('msg', 'invalid value')}"
        code = "invalid_parameter"
    details = [
        {"param": _param_name(tuple(e.get("loc", ()))), "message": e.get("msg")} for e in errors
    ]
    extra: dict[str, Any] = {}
    if first.get("type") in ("enum", "literal_error"):
        # pydantic says "'day' or 'month'": the choices, as a list a client can show
        ctx = first.get("ctx")
        expected = str(ctx.get("expected", "")) if isinstance(ctx, dict) else ""
        extra["allowed"] = re.findall(r"'([^']*)'", expected)
    return error_response(400, code, message, param=param, errors=details, **extra)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the
    first route that matched the path, not, say, both GET and DELETE)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        if context.path_format and context.methods:
            regex, _format, _convertors = compile_path(context.path_format)
            if regex.match(request.url.path):
                methods |= set(context.methods)
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        401: "unauthorized",
        413: "payload_too_large",
    }
    code = codes.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route. The API reference is at /docs."
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not served here; use {' or '.join(allowed)}."
        return error_response(405, code, message, headers, allowed=allowed)
    return error_response(exc.status_code, code, message, headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReelgateError, _reelgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
