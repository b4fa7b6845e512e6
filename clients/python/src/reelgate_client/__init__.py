"""The reelgate Python SDK: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

    from reelgate_client import Client

    with Client() as rg:  # REELGATE_URL, REELGATE_API_KEY
        video = rg.generate("local", "a red fox running through snow", duration_seconds=4,
                            on_progress=lambda v: print(v.status, v.progress))
        rg.download(video, "fox.mp4")

It talks to a gateway over HTTP only (its one dependency is httpx); it never imports
the server. The command line (``reelgate-client``, in ``reelgate_client.cli``) needs the
``cli`` extra: ``pip install 'reelgate-client[cli]'``.
"""

from reelgate_client._async import AsyncClient, AsyncUsage
from reelgate_client._sync import Client, Usage
from reelgate_client._version import __version__
from reelgate_client.errors import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    DownloadError,
    InsufficientCreditsError,
    JobCanceledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    ReelgateAPIError,
    ReelgateClientError,
    RefusedError,
    ServerError,
    ValidationError,
    WaitTimeout,
)
from reelgate_client.models import (
    FINAL_STATUSES,
    AllowedParams,
    Attempt,
    Balance,
    Cost,
    JobError,
    Model,
    ModelDefaults,
    Money,
    Page,
    Price,
    ProviderParam,
    Storyboard,
    StoryboardShot,
    SyncedMapping,
    SyncedModel,
    UsageDay,
    UsageRow,
    UsageSummary,
    Video,
    VideoEvent,
    VideoParams,
    VideoResult,
)

__all__ = [
    "FINAL_STATUSES",
    "APIConnectionError",
    "AllowedParams",
    "AsyncClient",
    "AsyncUsage",
    "Attempt",
    "AuthenticationError",
    "Balance",
    "Client",
    "ConflictError",
    "Cost",
    "DownloadError",
    "InsufficientCreditsError",
    "JobCanceledError",
    "JobError",
    "JobFailedError",
    "JobTimeoutError",
    "Model",
    "ModelDefaults",
    "Money",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "Price",
    "ProviderParam",
    "QuotaError",
    "RateLimitError",
    "ReelgateAPIError",
    "ReelgateClientError",
    "RefusedError",
    "ServerError",
    "Storyboard",
    "StoryboardShot",
    "SyncedMapping",
    "SyncedModel",
    "Usage",
    "UsageDay",
    "UsageRow",
    "UsageSummary",
    "ValidationError",
    "Video",
    "VideoEvent",
    "VideoParams",
    "VideoResult",
    "WaitTimeout",
    "__version__",
]
