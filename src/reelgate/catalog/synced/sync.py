"""``reelgate catalog sync``: fetch fal's and Replicate's video models with their input
schemas, store them (``synced_models``), and say what is new, changed and gone.

fal: its Platform API, ``GET {fal_platform_url}/v1/models?category=<c>&status=active
&expand=openapi-3.0&limit=100``, paged by ``cursor`` until ``has_more`` is false; each
model's ``openapi`` is its OpenAPI 3 document (the key is sent when set; the list needs
none). Replicate: ``GET {replicate_base_url}/collections/<c>`` (the collection with its
models in full, ``latest_version.openapi_schema`` included; not paginated), with the API
token. The categories are ``text-to-video`` and ``image-to-video`` (the slugs both use).

A model is keyed by its catalog id (``catalog.synced.model.catalog_id``). Its schema's
hash (``InputSchema.hash``: the input and what it references) decides "changed"; a
changed schema is mapped again (``mapping.derive``) and flagged when the mapping's
status or its problems moved. A model not listed by a fetch that succeeded in full for
its provider and category is ``retired`` (kept, with ``retired_at``): the catalog's
lifecycle refuses it, or falls back along its chain, like any retired model. A fetch
that fails retires nothing: an outage is no removal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate.catalog.synced.mapping import derive
from reelgate.catalog.synced.model import SyncedModel, catalog_id
from reelgate.catalog.synced.prices import SyncedPrice, price_of
from reelgate.catalog.synced.schema import (
    InputSchema,
    SchemaProblem,
    fal_input_schema,
    replicate_input_schema,
)
from reelgate.catalog.synced.store import all_rows, upsert
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.schema import synced_models

if TYPE_CHECKING:
    from reelgate.config import Settings

__all__ = [
    "CATEGORIES",
    "PROVIDERS",
    "Fetched",
    "SyncError",
    "SyncReport",
    "SyncSource",
    "counts_of",
    "fetch_fal",
    "fetch_replicate",
    "merge",
    "run_sync",
    "source_of",
]

PROVIDERS = ("fal", "replicate")
CATEGORIES = ("text-to-video", "image-to-video")
PAGE_LIMIT = 100
MAX_PAGES = 200
"""A guard against a cursor that never ends (200 pages of 100: well above fal's 1,400)."""


class SyncError(Exception):
    """A provider's list could not be read: nothing of that provider changes."""


@dataclass(frozen=True)
class Fetched:
    """One model as a fetch found it."""

    provider: str
    upstream_id: str
    category: str
    display_name: str
    description: str
    schema: InputSchema
    version: str | None
    source: str


@dataclass
class SyncReport:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    """Changed models whose mapping no longer fits as it did: id -> what moved."""
    gone: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    """Retired earlier, listed again: active once more."""
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)
    """Models listed without a schema this module can read: id -> why."""
    errors: dict[str, str] = field(default_factory=dict)
    """provider -> why its fetch failed (nothing of it was changed)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Over the active synced models: usable, mapped, unpriced, unmappable."""

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"new: {len(self.new)}, changed: {len(self.changed)}, gone: {len(self.gone)}, "
            f"back: {len(self.returned)}, unchanged: {self.unchanged}"
        ]
        out += [f"  + {m}" for m in self.new]
        for m in self.changed:
            flag = self.flagged.get(m)
            out.append(f"  ~ {m}" + (f"  MAPPING FLAGGED: {'; '.join(flag)}" if flag else ""))
        out += [f"  - {m} (retired)" for m in self.gone]
        out += [f"  ^ {m} (listed again: active)" for m in self.returned]
        out += [f"  ! skipped {m}" for m in self.skipped]
        out += [f"  ! {p}: fetch failed, nothing changed: {e}" for p, e in self.errors.items()]
        c = self.counts
        out.append(
            f"active synced models: {c.get('active', 0)} (usable {c.get('usable', 0)}, "
            f"mapped {c.get('mapped', 0)}, unpriced {c.get('unpriced', 0)}, "
            f"unmappable {c.get('unmappable', 0)}); retired: {c.get('retired', 0)}"
        )
        return out


async def _get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
    try:
        answer = await client.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise SyncError(f"GET {url}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise SyncError(f"GET {url} answered {answer.status_code}: {answer.text[:200]}")
    try:
        return answer.json()
    except ValueError:
        raise SyncError(f"GET {url} answered no JSON") from None


async def fetch_fal(
    client: httpx.AsyncClient,
    platform_url: str,
    categories: Sequence[str],
    *,
    api_key: str | None = None,
    skipped: dict[str, str] | None = None,
    known: Container[str] = (),
) -> list[Fetched]:
    """Every active model of ``categories`` on fal, with its input schema; a model
    listed with a schema this module cannot read goes into ``skipped`` (id -> why)."""
    headers = {"Authorization": f"Key {api_key}"} if api_key else {}
    url = f"{platform_url.rstrip('/')}/v1/models"
    found: list[Fetched] = []
    for category in categories:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {
                "category": category,
                "status": "active",
                "expand": "openapi-3.0",
                "limit": PAGE_LIMIT,
            }
            if cursor:
                params["cursor"] = cursor
            page = await _get_json(client, url, params=params, headers=headers)
            if not isinstance(page, dict) or not isinstance(page.get("models"), list):
                raise SyncError(f"GET {url}: no models list in the answer")
            for item in page["models"]:
                endpoint_id = item.get("endpoint_id") if isinstance(item, dict) else None
                if not isinstance(endpoint_id, str):
                    continue
                meta = item.get("metadata") or {}
                try:
                    schema = fal_input_schema(item.get("openapi") or {}, endpoint_id, known=known)
                except SchemaProblem as exc:
                    if skipped is not None:
                        skipped[catalog_id("fal", endpoint_id)] = str(exc)
                    continue
                found.append(
                    Fetched(
                        provider="fal",
                        upstream_id=endpoint_id,
                        category=str(meta.get("category") or category),
                        display_name=str(meta.get("display_name") or endpoint_id),
                        description=str(meta.get("description") or ""),
                        schema=schema,
                        version=None,
                        source=f"{url}?endpoint_id={endpoint_id}&expand=openapi-3.0",
                    )
                )
            cursor = page.get("next_cursor") if page.get("has_more") else None
            if not cursor:
                break
        else:
            raise SyncError(f"GET {url}: more than {MAX_PAGES} pages")
    return found


async def fetch_replicate(
    client: httpx.AsyncClient,
    base_url: str,
    categories: Sequence[str],
    *,
    token: str,
    skipped: dict[str, str] | None = None,
    known: Container[str] = (),
) -> list[Fetched]:
    """Every model of Replicate's ``categories`` collections, with its input schema."""
    headers = {"Authorization": f"Bearer {token}"}
    base = base_url.rstrip("/")
    found: list[Fetched] = []
    for category in categories:
        url = f"{base}/collections/{category}"
        collection = await _get_json(client, url, headers=headers)
        models = collection.get("models") if isinstance(collection, dict) else None
        if not isinstance(models, list):
            raise SyncError(f"GET {url}: no models in the collection")
        for model in models:
            if not isinstance(model, dict):
                continue
            name = f"{model.get('owner')}/{model.get('name')}"
            version = model.get("latest_version") or {}
            try:
                schema = replicate_input_schema(version.get("openapi_schema") or {}, known=known)
            except SchemaProblem as exc:
                if skipped is not None:
                    skipped[catalog_id("replicate", name)] = str(exc)
                continue
            found.append(
                Fetched(
                    provider="replicate",
                    upstream_id=name,
                    category=category,
                    display_name=name,
                    description=str(model.get("description") or ""),
                    schema=schema,
                    # a community model runs by its version (POST /v1/predictions); an
                    # official one by its name alone, with no version to pin
                    # (providers.replicate.target_of has the sources)
                    version=str(version["id"])
                    if version.get("id") and model.get("is_official") is False
                    else None,
                    source=f"{base}/models/{name} (via {url})",
                )
            )
    return found


def _mapping_of(model_id: str, schema: InputSchema, category: str) -> tuple[str, list[str]]:
    fm = derive(model_id, schema, category)
    return fm.status, list(fm.problems)


def merge(
    rows: Iterable[SyncedModel],
    fetched: Iterable[Fetched],
    *,
    provider: str,
    categories: Sequence[str],
    now: int,
    report: SyncReport,
    unreadable: Mapping[str, str] | None = None,
) -> list[SyncedModel]:
    """The rows to write for one provider's fetch. ``unreadable``: models the fetch
    listed with a schema that could not be read (id -> why): still there upstream, so
    never retired; a stored one keeps its last good schema and is flagged."""
    before = {r.id: r for r in rows if r.provider == provider}
    unreadable = unreadable or {}
    out: list[SyncedModel] = []
    seen: set[str] = set()
    for f in fetched:
        model_id = catalog_id(f.provider, f.upstream_id)
        if model_id in seen:
            continue  # listed in both categories: the first wins
        seen.add(model_id)
        status, problems = _mapping_of(model_id, f.schema, f.category)
        old = before.get(model_id)
        fresh = SyncedModel(
            id=model_id,
            provider=f.provider,
            upstream_id=f.upstream_id,
            category=f.category,
            display_name=f.display_name,
            description=f.description,
            schema=f.schema,
            schema_hash=f.schema.hash,
            version=f.version,
            status="active",
            mapping_status=status,
            problems=tuple(problems),
            source=f.source,
            first_seen_at=old.first_seen_at if old else now,
            fetched_at=now,
            changed_at=now,
            retired_at=None,
            updated_at=now,
        )
        if old is None:
            report.new.append(model_id)
        elif old.schema_hash != fresh.schema_hash or old.version != fresh.version:
            report.changed.append(model_id)
            moved = []
            if old.mapping_status != status:
                moved.append(f"mapping {old.mapping_status} -> {status}")
            for p in sorted(set(problems) - set(old.problems)):
                moved.append(f"new problem: {p}")
            if moved:
                report.flagged[model_id] = moved
            if old.status == "retired":
                report.returned.append(model_id)
        elif old.status == "retired":
            report.returned.append(model_id)
            fresh = dataclasses.replace(fresh, changed_at=old.changed_at)
        else:
            report.unchanged += 1
            # only the fetch time moves: processes need not rebuild it (store.load_into)
            fresh = dataclasses.replace(fresh, changed_at=old.changed_at, updated_at=old.updated_at)
        out.append(fresh)
    for model_id, why in unreadable.items():
        if model_id in before and model_id not in seen:
            report.flagged[model_id] = [f"schema unreadable, the last good one kept: {why}"]
    for old in before.values():
        if old.id in seen or old.id in unreadable:
            continue
        if old.status == "retired" or old.category not in categories:
            continue
        report.gone.append(old.id)
        out.append(dataclasses.replace(old, status="retired", retired_at=now, updated_at=now))
    return out


def counts_of(
    rows: Iterable[SyncedModel], prices: dict[str, SyncedPrice] | None = None
) -> dict[str, int]:
    """usable (mapped and priced), mapped, unpriced (mapped, no price), unmappable, over
    the active rows; and how many are retired."""
    c = {"active": 0, "usable": 0, "mapped": 0, "unpriced": 0, "unmappable": 0, "retired": 0}
    for r in rows:
        if r.status == "retired":
            c["retired"] += 1
            continue
        c["active"] += 1
        if r.mapping_status != "mapped":
            c["unmappable"] += 1
            continue
        c["mapped"] += 1
        if price_of(r.id, prices or {}) is None and r.full_id not in (prices or {}):
            c["unpriced"] += 1
        else:
            c["usable"] += 1
    return c


@dataclass(frozen=True)
class SyncSource:
    """Where and how to fetch (from ``Settings``; tests aim it at the emulators)."""

    fal_platform_url: str
    fal_api_key: str | None
    replicate_base_url: str
    replicate_token: str | None


async def run_sync(
    db: AsyncEngine,
    source: SyncSource,
    *,
    providers: Sequence[str] = PROVIDERS,
    categories: Sequence[str] = CATEGORIES,
    prices: dict[str, SyncedPrice] | None = None,
    client: httpx.AsyncClient | None = None,
    timeout_seconds: float = 60.0,
) -> SyncReport:
    """Fetch, compare, store; the report says what moved."""
    report = SyncReport()
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
    fetched: dict[str, list[Fetched]] = {}
    unreadable: dict[str, str] = {}
    # schemas stored before were checked then: most of a sync's cost is not paid again
    async with reading(db) as conn:
        known = set((await conn.execute(sa.select(synced_models.c.schema_hash))).scalars())
    try:
        for provider in providers:
            try:
                if provider == "fal":
                    fetched[provider] = await fetch_fal(
                        http,
                        source.fal_platform_url,
                        categories,
                        api_key=source.fal_api_key,
                        skipped=unreadable,
                        known=known,
                    )
                elif provider == "replicate":
                    if not source.replicate_token:
                        raise SyncError(
                            "Replicate's API needs a token: set REELGATE_REPLICATE_API_TOKEN"
                        )
                    fetched[provider] = await fetch_replicate(
                        http,
                        source.replicate_base_url,
                        categories,
                        token=source.replicate_token,
                        skipped=unreadable,
                        known=known,
                    )
                else:
                    raise SyncError(f"no catalog sync for {provider!r}; one of {PROVIDERS}")
            except SyncError as exc:
                report.errors[provider] = str(exc)
    finally:
        if own:
            await http.aclose()
    report.skipped = [f"{m}: {why}" for m, why in sorted(unreadable.items())]
    now = now_ms()
    async with db.begin() as conn:
        rows = await all_rows(conn)
        stored = {r.id: r for r in rows}
        for provider, found in fetched.items():
            for row in merge(
                rows,
                found,
                provider=provider,
                categories=categories,
                now=now,
                report=report,
                unreadable=unreadable,
            ):
                await upsert(conn, row)
                stored[row.id] = row
        report.counts = counts_of(stored.values(), prices)
    return report


def source_of(settings: Settings) -> SyncSource:
    """Where the configured fal and Replicate accounts are (their keys, when set)."""
    fal = settings.provider_settings("fal")
    rep = settings.provider_settings("replicate")
    fal_key = getattr(fal, "fal_api_key", None)
    token = getattr(rep, "replicate_api_token", None)
    return SyncSource(
        fal_platform_url=str(getattr(fal, "fal_platform_url", "https://api.fal.ai")),
        fal_api_key=fal_key.get_secret_value().strip() or None if fal_key else None,
        replicate_base_url=str(getattr(rep, "replicate_base_url", "https://api.replicate.com/v1")),
        replicate_token=token.get_secret_value().strip() or None if token else None,
    )
