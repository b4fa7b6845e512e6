"""Models reelgate reaches through the hosted inference platforms (fal, Replicate), and
the routes those platforms add to models it also reaches directly (Wan, Veo).

Each public model accepts only what every one of its routes can render (the
intersection of their schemas: ``providers/fal.py`` ``APPS`` and
``providers/replicate.py`` ``MODELS`` map the one request shape onto each app's own
field names). Prices are list prices in USD per second of video, in credits at the
default credit value (one US cent: ``usd``), each with its source and date; a route's
``cost_per_second`` is what that route costs upstream and ranks otherwise equal
routes. docs/models.md has the table.
"""

from __future__ import annotations

from reelgate.billing.money import MILLICREDITS_PER_USD, millicredits_for_usd
from reelgate.catalog.models import AllowedParams, Lifecycle, ModelSpec, Route

__all__ = ["HOSTED_MODELS", "MILLICREDITS_PER_USD", "fal_route", "replicate_route", "usd"]


def usd(per_second: str) -> int:
    """Millicredits per second for a list price in USD per second (at the default credit
    value, one US cent; rounded up)."""
    return millicredits_for_usd(per_second)


# Where the facts come from (read 2026-12-02; docs/providers/fal.md and replicate.md).
_FAL_JS = "fal-ai/fal-js@381105e1 libs/client/src/types/endpoints.ts (2026-08-02)"
_FAL_PRICES = (
    "fal's GET /v1/models/pricing as copied in a public Admart pricing module "
    "(code index 63251236365; undated copy, read 2026-12-02)"
)
_FAL_LIST_2026_09 = (
    "fal.ai list prices read on 2026-09-15 (a public catalogue, code index 69017082716)"
)


_REP_RENKU = (
    "keremk/renku catalog/models/replicate/replicate.yaml (a public copy of Replicate's "
    "model pages; entry dated {date}, read 2026-12-02)"
)
_FAL_RENKU = (
    "keremk/renku catalog/models/fal-ai/fal-ai.yaml (a public copy of fal's model pages; "
    "entry dated 2026-02-21, read 2026-12-02)"
)


def _page(app: str) -> str:
    return f"https://fal.ai/models/{app}/llms.txt (2026-08-02)"


def _rep(model: str) -> str:
    return f"https://replicate.com/{model} (API schema page, read 2026-12-02)"


def _by_resolution(costs: dict[str, str] | None) -> tuple[tuple[str, int], ...]:
    return tuple((res, usd(cost)) for res, cost in (costs or {}).items())


def fal_route(
    app: str, cost: str | None, source: str, by_resolution: dict[str, str] | None = None
) -> Route:
    """A route through fal's queue: ``app`` is the text-to-video app id; ``cost`` the USD
    list price per second (``by_resolution`` where fal prices by size)."""
    return Route(
        app,
        Lifecycle.GA,
        source=source,
        provider="fal",
        cost_per_second=usd(cost) if cost is not None else None,
        cost_by_resolution=_by_resolution(by_resolution),
    )


def replicate_route(
    model: str,
    cost: str | None,
    source: str = "",
    by_resolution: dict[str, str] | None = None,
) -> Route:
    """A route through Replicate's predictions API (``owner/name``)."""
    return Route(
        model,
        Lifecycle.GA,
        source=source or _rep(model),
        provider="replicate",
        cost_per_second=usd(cost) if cost is not None else None,
        cost_by_resolution=_by_resolution(by_resolution),
    )


_KLING_FAL = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video"
_SEEDANCE_FAL = "fal-ai/bytedance/seedance/v1/pro/text-to-video"
_HAILUO_FAL = "fal-ai/minimax/hailuo-02/standard/text-to-video"
_LUMA_FAL = "fal-ai/luma-dream-machine/ray-2"
_LTX_FAL = "fal-ai/ltxv-13b-098-distilled"
_PIXVERSE_FAL = "fal-ai/pixverse/v5/text-to-video"

HOSTED_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="kling-2-5-turbo",
        provider="fal",
        upstream_model=_KLING_FAL,
        routes={
            "fal": fal_route(_KLING_FAL, "0.07", f"{_page(_KLING_FAL)}; {_FAL_PRICES}"),
            "replicate": replicate_route(
                "kwaivgi/kling-v2.5-turbo-pro",
                "0.07",
                'replicate.com/kwaivgi/kling-v2.5-turbo-pro: "$0.07 per second of output '
                'video" (copied in Volpestyle/llmhub docs/models/replicate/, undated; '
                + _REP_RENKU.format(date="2026-02-21")
                + ")",
            ),
        },
        display_name="Kling 2.5 Turbo Pro (Kuaishou)",
        strengths="Cinematic motion, prompt adherence",
        notes=(
            "Through fal or Replicate. 5 or 10 s; the aspect ratio of an image-to-video "
            "job follows its image. $0.07/s on fal (2026-08-02)"
        ),
        allowed=AllowedParams(
            resolutions=("1080p",),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5, 10),
            image_input=True,
            negative_prompt=True,
            seed=False,
        ),
        price_per_second=usd("0.07"),
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=120.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="seedance-1-pro",
        provider="fal",
        upstream_model=_SEEDANCE_FAL,
        routes={
            # $2.5 per million video tokens (h x w x 24 fps x s / 1024), per size
            "fal": fal_route(
                _SEEDANCE_FAL,
                "0.1215",
                f"{_page(_SEEDANCE_FAL)}; {_FAL_JS}",
                by_resolution={"720p": "0.054", "480p": "0.0243"},
            ),
            "replicate": replicate_route(
                "bytedance/seedance-1-pro",
                "0.15",
                "replicate.com/bytedance/seedance-1-pro at 1080p, the default (480p $0.03/s, "
                "720p $0.06/s): live model-page prices read 2026-10-03 in a public "
                "catalogue, code index 70382110750",
                by_resolution={"720p": "0.06", "480p": "0.03"},
            ),
        },
        display_name="Seedance 1.0 Pro (ByteDance)",
        strengths="Multi-shot storytelling, 2-12 s",
        notes=(
            "Through fal or Replicate. fal bills $2.5 per million video tokens "
            "(height x width x 24 fps x seconds / 1024): about $0.12/s at 1080p, "
            "$0.054/s at 720p, $0.024/s at 480p (2026-08-02)"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "720p", "1080p"),
            aspect_ratios=("16:9", "4:3", "1:1", "3:4", "9:16", "21:9"),
            durations=tuple(range(2, 13)),
            image_input=True,
            negative_prompt=False,
            seed=True,
        ),
        price_per_second=usd("0.1215"),
        resolution_prices={"720p": usd("0.054"), "480p": usd("0.0243")},
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=90.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="hailuo-02",
        provider="fal",
        upstream_model=_HAILUO_FAL,
        routes={
            "fal": fal_route(_HAILUO_FAL, "0.045", f"{_page(_HAILUO_FAL)}; {_FAL_PRICES}"),
            "replicate": replicate_route(
                "minimax/hailuo-02",
                "0.045",
                "replicate.com/minimax/hailuo-02 at 768p ($0.08/s at 1080p): "
                + _REP_RENKU.format(date="2025-12-17"),
            ),
        },
        display_name="Hailuo 02 (MiniMax)",
        strengths="Physics, natural motion",
        notes=(
            "Through fal or Replicate. 6 or 10 s at 768p (fal's standard tier takes no "
            "other size for text-to-video). $0.045/s on fal (2026-08-02)"
        ),
        allowed=AllowedParams(
            resolutions=("768p",),
            aspect_ratios=("16:9",),
            durations=(6, 10),
            image_input=True,
            negative_prompt=False,
            seed=False,
        ),
        price_per_second=usd("0.045"),
        default_resolution="768p",
        default_aspect_ratio="16:9",
        default_duration=6,
        typical_seconds=150.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="luma-ray-2",
        provider="fal",
        upstream_model=_LUMA_FAL,
        routes={
            "fal": fal_route(
                _LUMA_FAL,
                "0.20",
                f"{_FAL_JS}; keigit.com KeiSeiKit api-fal-ai.md (third-party price, $0.50 "
                "per 5 s at 540p; 720p 2x, 1080p 4x per the app schema)",
                by_resolution={"540p": "0.10", "1080p": "0.40"},
            ),
        },
        display_name="Ray 2 (Luma)",
        strengths="Realistic visuals, wide aspect ratios",
        notes=(
            "Through fal (not on Replicate). 5 or 9 s at 540p, 720p or 1080p. Priced from "
            "$0.10/s at 540p, twice that at 720p, four times at 1080p (third-party copy "
            "of fal's price, 2026-08-02)"
        ),
        allowed=AllowedParams(
            resolutions=("540p", "720p", "1080p"),
            aspect_ratios=("16:9", "9:16", "4:3", "3:4", "21:9", "9:21"),
            durations=(5, 9),
            image_input=True,
            negative_prompt=False,
            seed=False,
        ),
        price_per_second=usd("0.20"),
        resolution_prices={"540p": usd("0.10"), "1080p": usd("0.40")},
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=90.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="ltx-video",
        provider="fal",
        upstream_model=_LTX_FAL,
        routes={
            "fal": fal_route(
                _LTX_FAL,
                "0.008",
                f"{_FAL_JS}; {_FAL_PRICES}: $0.04 per video for "
                "fal-ai/ltx-video-13b-distilled (this app's predecessor), 5 s",
            ),
        },
        display_name="LTX Video 13B distilled (Lightricks)",
        strengths="Fast, cheap drafts",
        notes=(
            "Through fal. 5 s at 480p or 720p. Priced from $0.04 per 5 s video "
            "(fal's price for the 13B distilled predecessor)"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "720p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5,),
            image_input=True,
            negative_prompt=True,
            seed=True,
        ),
        price_per_second=usd("0.008"),
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=30.0,
        poll_interval_seconds=2.0,
    ),
    ModelSpec(
        id="pixverse-v5",
        provider="fal",
        upstream_model=_PIXVERSE_FAL,
        routes={
            "fal": fal_route(
                _PIXVERSE_FAL,
                "0.04",
                f"{_FAL_JS}; 5 s: 360p $0.15, 540p $0.15, 720p $0.20, 1080p $0.40 "
                f"(8 s twice that), {_FAL_RENKU}",
                by_resolution={"360p": "0.03", "540p": "0.03", "1080p": "0.08"},
            ),
            # No public per-second figure found: the model page says only "360p and 540p
            # cost the same, but 720p and 1080p cost more" (docs/providers/replicate.md).
            "replicate": replicate_route("pixverse/pixverse-v5", None),
        },
        display_name="PixVerse v5",
        strengths="Stylised effects, anime",
        notes=("Through fal or Replicate. 5 or 8 s from 360p to 1080p (1080p at 5 s only)"),
        allowed=AllowedParams(
            resolutions=("360p", "540p", "720p", "1080p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5, 8),
            image_input=True,
            negative_prompt=True,
            seed=True,
            durations_by_resolution={"1080p": (5,)},
        ),
        price_per_second=usd("0.04"),
        resolution_prices={"360p": usd("0.03"), "540p": usd("0.03"), "1080p": usd("0.08")},
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=60.0,
        poll_interval_seconds=5.0,
    ),
)
"""The models only the hosted platforms serve (Wan and Veo get routes there too:
``catalog.defaults``)."""

FAL_WAN_25 = fal_route(
    "fal-ai/wan-25-preview/text-to-video", "0.05", f"{_FAL_JS}; {_FAL_LIST_2026_09}"
)
# Replicate's per-resolution price for Wan 2.5 was not found in a public source (one
# undated flat $0.05/s copy only): unknown, so it ranks after the priced routes.
REPLICATE_WAN_25 = replicate_route("wan-video/wan-2.5-t2v", None)
FAL_VEO_31 = fal_route("fal-ai/veo3.1", "0.40", f"{_page('fal-ai/veo3.1')}; {_FAL_PRICES}")
REPLICATE_VEO_31 = replicate_route(
    "google/veo-3.1",
    "0.40",
    "replicate.com/google/veo-3.1 with audio ($0.20/s without): replicate.com/pricing "
    "(Jan 2026) as copied in velinussage/pfp-animate references/pricing.md, read 2026-12-02",
)
FAL_VEO_31_FAST = fal_route(
    "fal-ai/veo3.1/fast",
    "0.15",
    f"{_page('fal-ai/veo3.1/fast/first-last-frame-to-video')} (a sibling app's price); "
    f"{_FAL_PRICES}",
)
REPLICATE_VEO_31_FAST = replicate_route(
    "google/veo-3.1-fast",
    "0.15",
    "replicate.com/google/veo-3.1-fast with audio ($0.10/s without): "
    + _REP_RENKU.format(date="2026-05-05"),
)
