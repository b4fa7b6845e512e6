"""The OpenAPI document as the contract: every operation lists every status it sends.

FastAPI's generated document promises 422 for invalid input (reelgate answers
400 in its own error shape) and names no other error. ``install_openapi``
rewrites it once, from the routes themselves:

- one ``Error`` schema (``{"error": {"code", "message", ...}}``) for every error;
- each operation's own errors, declared beside the route with ``errors(...)``;
- what any operation can answer: 400 (the request guard checks every path and
  query string), 500, 503 (the database is out of reach); with an API key
  also 401, 403 and 429;
- 413 and 415 wherever a body may come (the body guard), and on every POST
  409 and 422 for its ``Idempotency-Key`` (in use; reused with another
  request), with the header documented;
- optional query parameters without their ``null`` alternative: a query
  string has no null, the parameter is simply left out;
- on every string a request carries, the pattern the request guard enforces
  (no control characters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

__all__ = ["ERROR_SCHEMA", "errors", "install_openapi"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable; branch on this."},
                "message": {"type": "string", "description": "For a person: what to do."},
                "param": {"type": "string", "description": "The input at fault, if one."},
                "allowed": {"type": "array", "description": "The values that would do."},
            },
            "additionalProperties": True,
        }
    },
}

_WHY = {
    400: "Invalid input: invalid_parameter, invalid_json, invalid_characters, "
    "unknown_parameter, unknown_model, ... (param and allowed say which and what).",
    401: "Missing or invalid API key.",
    402: "Not enough credits (the numbers are in the error).",
    403: "The key lacks the scope, or the account may not use the model.",
    404: "No such object (another account's is a 404 too).",
    409: "Conflict with the object's state, or the Idempotency-Key is still in use.",
    410: "Gone: the upstream's copy expired.",
    413: "The body (or an inline image) is too large.",
    415: "Unsupported Content-Type: send application/json.",
    422: "The Idempotency-Key was already used with a different request.",
    429: "Rate limited, or too much in flight for the account; see Retry-After.",
    500: "An unexpected error; the reference is in the log. Safe to retry with the same "
    "Idempotency-Key.",
    502: "The upstream failed to serve the video; retry shortly.",
    503: "reelgate cannot serve now (database_unavailable, ...); see Retry-After.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the errors it sends beyond the common ones."""
    return {status: {"description": _WHY[status]} for status in statuses}


def _error_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _WHY[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in (409, 429, 502, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    for dep in dependant.dependencies:
        if dep.call is not None:
            found.add(dep.call)
        found |= _calls(dep)
    return found


def _operation_keys(app: FastAPI, auth: set[Callable[..., Any]]) -> dict[tuple[str, str], bool]:
    """(path, method) -> whether the operation needs an API key (it depends on one of
    ``auth``), read from the routes as mounted (prefixes of included routers applied)."""
    keyed: dict[tuple[str, str], bool] = {}
    for context in iter_route_contexts(app.routes):
        route = context.route
        path = context.path_format
        if isinstance(route, APIRoute) and route.include_in_schema and path is not None:
            needs_key = bool(_calls(route.dependant) & auth)
            for method in context.methods or ():
                keyed[(path, method.lower())] = needs_key
    return keyed


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if not options:
        return schema
    kept = [o for o in options if o.get("type") != "null"]
    if len(kept) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**rest, **kept[0]}
    return {**schema, "anyOf": kept}


NO_CONTROL_CHARACTERS = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
"""What the request guard enforces on every string a client sends (tab, newline and
carriage return are allowed; other C0/C1 controls and DEL are not)."""


def _clean_strings(schema: Any) -> None:
    """Say, on every string a request may carry, that control characters are refused."""
    if isinstance(schema, list):
        for item in schema:
            _clean_strings(item)
        return
    if not isinstance(schema, dict):
        return
    if (
        schema.get("type") == "string"
        and not {"pattern", "enum", "const", "format"} & schema.keys()
    ):
        schema["pattern"] = NO_CONTROL_CHARACTERS
    for key, value in schema.items():
        if key not in ("example", "examples", "default"):
            _clean_strings(value)


_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried POST safe: the same key and body replay the first "
    "answer; the same key with another body is a 422. 1 to 255 printable ASCII characters.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        # printable ASCII; HTTP trims leading and trailing spaces off a header value
        "pattern": "^[!-~]([ -~]*[!-~])?$",
    },
}


def _rewrite(operation: dict[str, Any], method: str, needs_key: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    for code, response in list(responses.items()):
        if code.isdigit() and int(code) >= 400:
            responses[code] = _error_response(int(code), response.get("description"))
    # 400 everywhere: the request guard checks every path and query string too
    common = [400, 500, 503]
    params = operation.get("parameters", [])
    if needs_key:
        common += [401, 403, 429]
        operation["security"] = [{"bearer": []}]
    if method in ("post", "put", "patch", "delete"):
        common += [413, 415]  # the body guard answers before any route
    if method == "post":  # every POST honours Idempotency-Key
        common += [409, 422]
        params.append(_IDEMPOTENCY_HEADER)
        operation["parameters"] = params
    for status in common:
        responses.setdefault(str(status), _error_response(status))
    for param in params:
        if param.get("in") == "query" and not param.get("required") and "schema" in param:
            param["schema"] = _without_null(param["schema"])
        if param is not _IDEMPOTENCY_HEADER:
            _clean_strings(param.get("schema"))
    _clean_strings(operation.get("requestBody"))


# What a creating operation returns that other operations take: (path, method) of the
# creator -> the path parameter its answer's "id" fills. Written as OpenAPI links, so a
# client generator (or schemathesis's stateful phase) can chain create -> use.
_LINKS = {
    ("/v1/videos", "post"): "video_id",
    ("/v1/proxy/media-video-from-text", "post"): "job_id",
    ("/v1/admin/accounts", "post"): "account_id",
    ("/v1/admin/accounts/{account_id}/keys", "post"): "key_id",
}


def _add_links(paths: dict[str, Any]) -> None:
    for (path, method), param in _LINKS.items():
        creator = paths.get(path, {}).get(method)
        if creator is None:
            continue
        pointer = "$response.body#/job/id" if param == "job_id" else "$response.body#/id"
        links = {}
        for other_path, item in paths.items():
            if "{" + param + "}" not in other_path:
                continue
            for operation in item.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {param: pointer},
                }
        for status, response in creator["responses"].items():
            if status.startswith("2"):
                response["links"] = links


def install_openapi(app: FastAPI, *, auth: set[Callable[..., Any]]) -> None:
    """``auth``: the dependencies that demand an API key."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        keyed = _operation_keys(app, auth)
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                _rewrite(operation, method, keyed.get((path, method), False))
        _add_links(schema.get("paths", {}))
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        for name, component in schemas.items():
            if name != "Error":
                _clean_strings(component)
        schemas["Error"] = ERROR_SCHEMA
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An rg_ API key."}
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
