"""The FastAPI application: routes, error shape, and the runtime it serves."""

from __future__ import annotations

from fastapi import FastAPI

from reelgate import __version__
from reelgate.api import (
    health,
    provider_hooks,
    routes_admin,
    routes_budgets,
    routes_edits,
    routes_events,
    routes_media_service,
    routes_metrics,
    routes_models,
    routes_storyboards,
    routes_usage,
    routes_videos,
    routes_webhooks,
    uploads,
)
from reelgate.api.auth import require_admin, require_read, require_write
from reelgate.api.errors import install_error_handlers
from reelgate.api.files import make_files_router
from reelgate.api.middleware import ErrorBoundary, RequestGuard
from reelgate.api.openapi import install_openapi
from reelgate.job import MAX_IMAGE_BYTES
from reelgate.runtime import Runtime
from reelgate.storage import local_root
from reelgate.web import mount_web

__all__ = ["create_app"]


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="reelgate",
        version=__version__,
        description="One API for AI video generation: submit, poll, download.",
    )
    app.state.runtime = rt
    install_error_handlers(app)
    app.include_router(routes_models.router)
    app.include_router(routes_videos.router)
    app.include_router(routes_edits.router)
    app.include_router(routes_storyboards.router)
    app.include_router(routes_usage.router)
    app.include_router(routes_events.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_media_service.router)
    app.include_router(routes_webhooks.router)
    app.include_router(routes_budgets.router)
    app.include_router(uploads.router)
    app.include_router(provider_hooks.router)
    app.include_router(health.router)
    app.include_router(routes_metrics.router)
    root = local_root(rt.storage)
    if root is not None:
        app.include_router(make_files_router(root, rt.signing_secret))

    mount_web(app)
    install_openapi(app, auth={require_read, require_write, require_admin})
    app.add_middleware(
        RequestGuard,
        max_body_bytes=rt.settings.max_body_bytes,
        inline_image_bytes=MAX_IMAGE_BYTES,
        upload_bytes=MAX_IMAGE_BYTES,
        object_bytes=rt.settings.mirror_max_bytes,
    )
    app.add_middleware(ErrorBoundary)  # added last: the outermost
    return app
