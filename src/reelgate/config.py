"""Settings, read once at the edge (environment ``REELGATE_*`` or ``.env``) and passed in.

Nothing below the CLI and the app factory reads the environment.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelgate.billing.money import CreditValue
from reelgate.netsafe import NetPolicy

if TYPE_CHECKING:
    from reelgate.providers.plugin import ProviderSettings

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    # "allow": a provider's settings given in code (``Settings(xai_api_key=...)``) are
    # kept for its own settings model, which checks them (an unknown name is an error)
    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="allow")

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    storage_url: str = ""
    storage_options: dict[str, str] = Field(default_factory=dict)
    """obstore options for s3:// and gs:// (e.g. aws_endpoint, aws_region); JSON in the env."""
    config_file: Path | None = None
    public_url: str = ""
    """The gateway's address as clients (and providers calling back) reach it."""
    inbound_webhooks: bool = True
    """Ask providers that can call back to do so when a job finishes (on ``public_url``,
    which they must be able to reach); polling stays on as a slower safety net."""
    webhook_safety_poll_seconds: float = Field(default=300.0, gt=0)
    """With a callback registered, the longest a running job waits for one before it is
    polled anyway (never sooner than twice the model's usual render time)."""
    dev_api_key: SecretStr | None = None
    dev_credits: int = Field(default=100_000, ge=0)
    """Credits the embedded default's dev account is granted when it is created."""
    credit_value: str = Field(default="0.01", pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$")
    """What one credit is worth in ``currency`` (default: one US cent). Prices stay in
    credits; the money shown beside them, and the media service's ``token_cost``, follow
    this (``billing.money``)."""
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    usage_shows_upstream_cost: bool = False
    """Show upstream cost, margin and losses in ``GET /v1/usage/summary`` to every key of
    an account (accounts that are your own teams). Off: only keys with the ``admin`` scope
    see them; they are the operator's figures, not the customer's."""
    signing_secret: SecretStr | None = None
    signed_url_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)

    # limits: per-key request rate ("" turns it off); Redis shares counters across API processes
    redis_url: str = ""
    rate_limit: str = "600/minute;50/second"
    max_jobs_in_flight: int = Field(default=100, ge=1)
    """Per account: jobs queued or in progress at once."""
    max_seconds_in_flight: int = Field(default=2000, ge=1)
    """Per account: seconds of video requested by jobs queued or in progress."""

    # requests
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """The largest JSON body accepted (inline images and uploads have their own cap on top)."""
    idempotency_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long a request holds its Idempotency-Key before a retry may take it over (if
    the first never finished: a crash, a lost database)."""
    database_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    """The longest any one wait on the database may take; past it, 503 / back off."""

    metrics: Literal["off", "open", "token"] = "open"
    """``GET /metrics`` (Prometheus): ``open`` to anyone who reaches it (as LiteLLM's),
    ``token`` only with ``Authorization: Bearer <metrics_token>``, ``off``: not served
    and nothing recorded."""
    metrics_token: SecretStr | None = None
    metrics_dir: Path | None = None
    """Where this host's processes keep their counters (``reelgate.metrics``); default
    ``<data_dir>/metrics``. Shared by every API and worker process of the host."""

    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, with request id and job context
    (``reelgate.logs``)."""

    # engine
    worker_concurrency: int = Field(default=8, ge=1, le=1024)
    lease_seconds: float = Field(default=30.0, gt=1)
    idle_poll_seconds: float = Field(default=5.0, gt=0)
    default_deadline_seconds: int = Field(default=3600, gt=0)
    lost_create_settle_seconds: float = Field(default=5.0, ge=0)
    """After a create's answer is lost, wait the provider's timeout plus this long before
    searching its job list, so a create it did receive is surely listed."""
    model_gone_mark_seconds: float = Field(default=86_400.0, gt=0)
    """After a provider says it no longer serves a model (404 model not found, "no longer
    available"...), the model is skipped on that route and shown unavailable this long
    (``reelgate providers unmark MODEL`` lifts it sooner)."""
    mirror_quick_retries: int = Field(default=3, ge=0, le=20)
    """Mirror retries (seconds apart) before the video is delivered unmirrored."""
    mirror_background_retries: int = Field(default=6, ge=0, le=50)
    """After the first quick retries fail, the job is delivered unmirrored and the copy
    is tried this many more times, each wait 4x the last (from mirror_retry_base_seconds,
    at most 2 h), while the upstream's link lasts."""
    mirror_retry_base_seconds: float = Field(default=30.0, gt=0)
    mirror_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    mirror_timeout_seconds: float = Field(default=900.0, gt=0)
    previews: bool = True
    """Store a poster (WebP) and a sprite sheet (JPEG) with each video (``media.previews``):
    ``GET /v1/videos/{id}/content?variant=thumbnail|spritesheet``, and the gallery."""

    # retention (``engine.retention``), swept by the workers
    retention_days: float = Field(default=30.0, ge=0)
    """Delivered videos are deleted from storage this long after delivery, unless pinned
    (``POST /v1/videos/{id}/pin``); 0 keeps them for ever."""
    retention_sweep_seconds: float = Field(default=3600.0, gt=0)
    local_renders_keep_hours: float = Field(default=24.0, ge=0)
    """The local renderer's finished renders and cache are deleted after this (0: never);
    the videos themselves are in storage by then."""

    # the synced catalog (``catalog.synced``), refreshed by the workers
    catalog_sync_hours: float = Field(default=0.0, ge=0)
    """Every this many hours a worker runs ``reelgate catalog sync`` itself (fal, and
    Replicate when its token is set); 0 (the default): only when an operator runs it."""
    catalog_sync_providers: list[str] = Field(default_factory=lambda: ["fal", "replicate"])

    # outbound webhooks (``reelgate.webhooks``), sent by the workers
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    """One delivery attempt, connect to last byte; a slower receiver counts as failed."""
    webhook_max_attempts: int = Field(default=10, ge=1, le=50)
    """Attempts before a delivery is given up (10 from a 5 s base: about 23.6 hours)."""
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    """The wait after the first failure; each next wait is 4x, at most 8 h, with jitter."""
    webhook_concurrency: int = Field(default=32, ge=1, le=1024)
    """Deliveries in flight at once per worker process."""
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    """How often an idle worker looks for new events and due retries."""
    webhook_progress_interval_seconds: float = Field(default=10.0, ge=0)
    """At most one ``video.progress`` delivery per job and target this often."""

    # untrusted URLs (image_url, provider results, webhook targets) reach only public
    # addresses on 80/443, unless these allow a private range / port (e.g. an emulator)
    fetch_allow_private: list[str] = Field(default_factory=list)
    fetch_allow_ports: list[int] = Field(default_factory=list)

    # providers: a provider is enabled when its settings configure a deployment (its key,
    # mostly). Base URLs are overridable so emulators or an operator's proxy can stand in.
    provider_timeout_seconds: float = Field(default=30.0, gt=0)
    provider_timeouts: dict[str, float] = Field(default_factory=dict)
    """Per provider kind, overriding provider_timeout_seconds (e.g. {"veo": 60})."""
    provider_max_concurrent: dict[str, int] = Field(default_factory=dict)
    """Per provider kind: jobs submitted upstream at once; more wait their turn."""
    provider_priority: dict[str, int] = Field(default_factory=dict)
    """Which route of a model is tried first: per provider kind (``{"fal": 10}``) or per
    model and kind (``{"wan-2-5:wan": 0}``); lower first, 100 when not set. Equal
    priorities go to the route that costs less upstream, then to catalog order."""
    # Each provider's own settings (its key, base URL, ...) are declared by its module
    # (``providers.plugin.ProviderSettings``) and reached with ``provider_settings``.

    _providers: dict[str, ProviderSettings] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """Read every provider's settings now, at the edge, from what was given in code
        and from the environment."""
        from reelgate.providers.plugin import discover

        given = dict(self.model_extra or {})
        for kind, plugin in discover().items():
            mine = {
                name: given.pop(name)
                for name in list(given)
                if name in plugin.settings.model_fields
            }
            own = self._providers[kind] = plugin.settings(**mine)
            for name in mine:  # kept validated: a key given as text becomes a secret
                self.__pydantic_extra__[name] = getattr(own, name)  # type: ignore[index]
        if given:
            raise ValueError(f"unknown settings: {', '.join(sorted(given))}")
        if Decimal(self.credit_value) <= 0:
            raise ValueError("credit_value must be more than 0 (what one credit is worth)")
        if self.metrics == "token" and not self.metrics_token:
            raise ValueError("metrics = token needs metrics_token (REELGATE_METRICS_TOKEN)")

    def credit(self) -> CreditValue:
        return CreditValue(Decimal(self.credit_value), self.currency)

    def resolved_metrics_dir(self) -> Path:
        return self.metrics_dir or self.data_dir / "metrics"

    def provider_settings(self, kind: str) -> ProviderSettings:
        return self._providers[kind]

    def updated(self, **changes: object) -> Settings:
        """A copy with ``changes`` validated like any setting (keys become secrets)."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def timeout_for(self, kind: str) -> float:
        return self.provider_timeouts.get(kind, self.provider_timeout_seconds)

    def net_policy(self) -> NetPolicy:
        return NetPolicy(
            allow_private=tuple(self.fetch_allow_private),
            allow_ports=frozenset(self.fetch_allow_ports),
        )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'reelgate.db').resolve()}"

    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "videos").resolve().as_uri()


def with_config_file(settings: Settings) -> Settings:
    """Provider deployments from the config file, under what the environment sets::

    [providers.veo]
    api_key = "..."            # the environment (REELGATE_VERTEX_ACCESS_TOKEN) wins
    base_url = "https://..."
    timeout_seconds = 60
    max_concurrent_jobs = 4
    priority = 10              # lower is tried first among a model's routes
    """
    from reelgate.providers.plugin import discover

    if settings.config_file is None:
        return settings
    data = tomllib.loads(settings.config_file.read_text()).get("providers", {})
    update: dict[str, object] = {}
    plugins = discover()
    for kind, values in data.items():
        plugin = plugins.get(kind)
        if plugin is None:
            raise ValueError(f"config file: unknown provider {kind!r}; one of {sorted(plugins)}")
        current = settings.provider_settings(kind)
        key_field, url_field = plugin.key_setting, plugin.base_url_setting
        if "api_key" in values and key_field and getattr(current, key_field) is None:
            update[key_field] = values["api_key"]
        if "base_url" in values and url_field and url_field not in current.model_fields_set:
            update[url_field] = values["base_url"]
        if "timeout_seconds" in values:
            update["provider_timeouts"] = {
                **settings.provider_timeouts,
                **dict(update.get("provider_timeouts", {})),  # type: ignore[call-overload]
                kind: float(values["timeout_seconds"]),
            }
        if "max_concurrent_jobs" in values:
            update["provider_max_concurrent"] = {
                **settings.provider_max_concurrent,
                **dict(update.get("provider_max_concurrent", {})),  # type: ignore[call-overload]
                kind: int(values["max_concurrent_jobs"]),
            }
        if "priority" in values:
            update["provider_priority"] = {
                **settings.provider_priority,
                **dict(update.get("provider_priority", {})),  # type: ignore[call-overload]
                kind: int(values["priority"]),
            }
    if not update:
        return settings
    return settings.updated(**update)
