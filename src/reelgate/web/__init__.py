"""The web studio: one static page at ``/`` and its assets under ``/static/``.

The page is plain HTML, CSS and ES modules shipped as package data (no build
step). It talks to the public API with the user's key, like any other client;
this module only serves files and must never hold API logic or see a key.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

__all__ = ["mount_web"]

# The key lives in localStorage, so script injection is the threat that matters:
# only our own scripts and styles run, and the API is same-origin. Videos may be
# signed URLs on another host (S3, GCS), and so may their posters and sprite sheets
# (the gallery), hence the wider media-src and img-src.
_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' https: http: data: blob:",
        "media-src 'self' https: http: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cache-Control": "no-cache",
    # the first visit may carry ?key=…; never send that URL anywhere
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def mount_web(app: FastAPI) -> None:
    """Serve the studio page at ``/`` and its assets at ``/static/``."""
    page = files("reelgate.web").joinpath("static/index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def studio() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(packages=[("reelgate.web", "static")]), name="static")
