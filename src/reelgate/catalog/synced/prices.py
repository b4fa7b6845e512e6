"""What a synced model costs: never read from its schema (schemas carry no prices).

A synced model is offered only with a price from ``PRICES`` (a public price, its source
and the date it was read) or from the operator (``[models."fal:<id>"]`` in the config
file: ``price_per_second``, ``resolution_prices``). Anything else is listed unpriced and
refused at submit. Prices are list prices in USD, turned into millicredits at the
default credit value (one US cent) and rounded up, as for the hand-written models
(``catalog.hosted.usd``); reelgate resells them at cost unless the operator says more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.billing.money import millicredits_for_usd

__all__ = ["PRICES", "PriceVariant", "SyncedPrice", "price_of"]


@dataclass(frozen=True)
class PriceVariant:
    """The price when some inputs differ from the ones the base price is for."""

    when: Mapping[str, Any]
    """``audio`` (reelgate's switch) or a model input's name -> its value."""
    per_second: int
    by_resolution: Mapping[str, int] = field(default_factory=dict)

    def for_resolution(self, resolution: str) -> int:
        return self.by_resolution.get(resolution, self.per_second)


@dataclass(frozen=True)
class SyncedPrice:
    per_second: int
    """Millicredits per second of video at the default resolution."""
    by_resolution: Mapping[str, int] = field(default_factory=dict)
    source: str = ""
    """Where the figure was read, and when; ``operator`` for the config file's."""
    base: Mapping[str, Any] = field(default_factory=dict)
    """The inputs that move the price, at the values this price is for (the model's
    defaults): ``{"audio": True}`` for a price with audio on."""
    variants: tuple[PriceVariant, ...] = ()
    """Known prices for other values of those inputs; any other combination has no
    known price, so a request asking for it is refused (``model_unpriced``)."""

    def for_request(
        self,
        resolution: str,
        audio: bool | None,
        provider_params: Mapping[str, Any] | None,
    ) -> int | None:
        """Millicredits per second for this request's inputs; None when unknown."""
        if not self.base:
            return self.by_resolution.get(resolution, self.per_second)
        given = dict(provider_params or {})
        if audio is not None:
            given["audio"] = audio
        state = {k: given.get(k, default) for k, default in self.base.items()}
        if state == dict(self.base):
            return self.by_resolution.get(resolution, self.per_second)
        for v in self.variants:
            if state == {**self.base, **v.when}:
                return v.for_resolution(resolution)
        return None

    def varied_by(self) -> str:
        """What moves the price, for a message: ``audio, mode``."""
        return ", ".join(self.base)


def _vary(
    price: SyncedPrice, base: Mapping[str, Any], *variants: tuple[dict[str, Any], str]
) -> SyncedPrice:
    """``price`` is for the inputs ``base``; each variant: (inputs that differ, USD/s)."""
    return dataclasses.replace(
        price,
        base=dict(base),
        variants=tuple(PriceVariant(w, millicredits_for_usd(usd)) for w, usd in variants),
    )


def _usd(per_second: str, source: str, **by_resolution: str) -> SyncedPrice:
    return SyncedPrice(
        per_second=millicredits_for_usd(per_second),
        by_resolution={
            k.removeprefix("r"): millicredits_for_usd(v) for k, v in by_resolution.items()
        },
        source=source,
    )


_FAL_PRICES = (
    "fal's GET /v1/models/pricing as copied in a public Admart pricing module "
    "(code index 63251236365; undated copy, read 2026-12-02)"
)


def _page(app: str) -> str:
    return f"https://fal.ai/models/{app}/llms.txt (2026-08-02)"


_READ = "read 2026-12-04"
_ADMART = (
    "fal's GET /v1/models/pricing as copied in a public Admart pricing module "
    f"(code index 63251236365; undated copy, {_READ})"
)
_RENKU = "keremk/renku@0b89b255 (2026-05-05)"


def _llms(app: str, says: str) -> str:
    """fal's own model page for ``app``, quoted."""
    return f'https://fal.ai/models/{app}/llms.txt (undated, {_READ}): "{says}"'


def _renku_fal(app: str, dated: str) -> str:
    return (
        f"{_RENKU} catalog/models/fal-ai/fal-ai.yaml, entry {app} dated {dated} "
        f"(git blame), {_READ}"
    )


def _renku_rep(model: str, dated: str) -> str:
    return (
        f"replicate.com/{model} as copied in {_RENKU} catalog/models/replicate/"
        f"replicate.yaml, entry dated {dated} (git blame), {_READ}"
    )


PRICES: dict[str, SyncedPrice] = {
    "fal:fal-ai/kling-video/v2.5-turbo/pro/text-to-video": _usd(
        "0.07", f"{_page('fal-ai/kling-video/v2.5-turbo/pro/text-to-video')}; {_FAL_PRICES}"
    ),
    "fal:fal-ai/kling-video/v2.5-turbo/pro/image-to-video": _usd(
        "0.07", f"{_page('fal-ai/kling-video/v2.5-turbo/pro/image-to-video')}; {_FAL_PRICES}"
    ),
    "fal:fal-ai/minimax/hailuo-02/standard/text-to-video": _usd(
        "0.045", f"{_page('fal-ai/minimax/hailuo-02/standard/text-to-video')}; {_FAL_PRICES}"
    ),
    "fal:fal-ai/minimax/hailuo-02/standard/image-to-video": _usd(
        "0.045",
        f"{_page('fal-ai/minimax/hailuo-02/standard/image-to-video')}",
        r512p="0.017",
    ),
    "replicate:kwaivgi/kling-v2.5-turbo-pro": _usd(
        "0.07",
        'replicate.com/kwaivgi/kling-v2.5-turbo-pro: "$0.07 per second of output video" '
        "(copied in Volpestyle/llmhub docs/models/replicate/, undated; keremk/renku "
        "catalog/models/replicate/replicate.yaml entry dated 2026-02-21, read 2026-12-02)",
    ),
    "replicate:minimax/hailuo-02": _usd(
        "0.045",
        "replicate.com/minimax/hailuo-02 at 768p ($0.08/s at 1080p): keremk/renku "
        "catalog/models/replicate/replicate.yaml (entry dated 2025-12-17, read 2026-12-02)",
        r1080p="0.08",
    ),
    "replicate:bytedance/seedance-1-pro": _usd(
        "0.15",
        "replicate.com/bytedance/seedance-1-pro at 1080p, the default: live model-page "
        "prices read 2026-10-03 in a public catalogue, code index 70382110750",
        r720p="0.06",
        r480p="0.03",
    ),
    "replicate:google/veo-3.1": _usd(
        "0.40",
        "replicate.com/google/veo-3.1 with audio ($0.20/s without): replicate.com/pricing "
        "(Jan 2026) as copied in velinussage/pfp-animate references/pricing.md, read 2026-12-02",
    ),
    "replicate:google/veo-3.1-fast": _usd(
        "0.15",
        "replicate.com/google/veo-3.1-fast with audio ($0.10/s without): keremk/renku@0b89b255 "
        "(2026-05-05) catalog/models/replicate/replicate.yaml (entry dated 2025-12-10 by git "
        "blame, read 2026-12-02; the 2026-05-05 once given here was the snapshot's date)",
    ),
    # fal, added 2026-12-04. Audio: the price with the schema's default (generate_audio).
    "fal:fal-ai/veo3.1": _usd(
        "0.40",
        "audio on, the default: "
        + _llms(
            "fal-ai/veo3.1",
            "$0.20 without audio or $0.40 with audio for 720p or 1080p",
        )
        + f"; {_ADMART} (unit_price 0.4 per second)",
    ),
    "fal:fal-ai/veo3.1/image-to-video": _usd(
        "0.40",
        f"audio on, the default ($0.20 off): {_renku_fal('veo3.1/image-to-video', '2025-12-17')}"
        f"; {_ADMART} (unit_price 0.4 per second)",
    ),
    "fal:fal-ai/veo3.1/first-last-frame-to-video": _usd(
        "0.40",
        "audio on, the default ($0.20 off): "
        f"{_renku_fal('veo3.1/first-last-frame-to-video', '2026-02-21')}"
        f"; {_ADMART} (unit_price 0.4 per second)",
    ),
    "fal:fal-ai/veo3.1/fast": _usd(
        "0.15",
        f"audio on, the default ($0.10 off): {_renku_fal('veo3.1/fast', '2025-12-17')}",
    ),
    "fal:fal-ai/veo3.1/fast/image-to-video": _usd(
        "0.15",
        "audio on, the default ($0.10 off): "
        f"{_renku_fal('veo3.1/fast/image-to-video', '2026-02-21')}",
    ),
    "fal:fal-ai/veo3": _usd(
        "0.40",
        "audio on, the default: " + _llms("fal-ai/veo3", "$0.20 (audio off) or $0.40 (audio on)"),
    ),
    "fal:fal-ai/veo3/fast": _usd(
        "0.15",
        "audio on, the default: https://fal.ai/learn/devs/veo3-developer-guide-building-"
        "production-ready-video-generation-applications (undated, "
        f'{_READ}): "fal-ai/veo3/fast ... at $0.10-$0.15/second" (audio off is the lower)',
    ),
    "fal:fal-ai/sora-2/text-to-video": _usd(
        "0.10", _llms("fal-ai/sora-2/text-to-video", "The pricing is $0.1/s for Sora 2.")
    ),
    "fal:fal-ai/sora-2/image-to-video": _usd(
        "0.10", _llms("fal-ai/sora-2/image-to-video", "The pricing is $0.1/s for Sora 2.")
    ),
    "fal:fal-ai/sora-2/text-to-video/pro": _usd(
        "0.50",
        "1080p, the default: https://lumenfall.ai/models/openai/sora-2-pro (fal.ai "
        f'fal-ai/sora-2/text-to-video/pro "Second 1080p $0.500, Second 720p $0.300 ... As of '
        f'Mar 13, 2026", {_READ}); fal.ai/docs/model-api-reference/video-generation-api/'
        'sora-2-text-to-video (undated): "0.30/second for 720p", "0.50 (1080p)"',
        r720p="0.30",
    ),
    "fal:fal-ai/sora-2/image-to-video/pro": _usd(
        "0.30",
        "720p ($0.50 at 1080p): https://lumenfall.ai/models/openai/sora-2-pro (fal.ai "
        'fal-ai/sora-2/image-to-video/pro "Second 1080p $0.500, Second 720p $0.300 ... As of '
        f'Mar 13, 2026", {_READ}); {_renku_fal("sora-2/image-to-video/pro", "2026-02-21")}',
        r1080p="0.50",
    ),
    "fal:fal-ai/kling-video/v2.6/pro/image-to-video": _usd(
        "0.14",
        "audio on, the default: "
        + _llms(
            "fal-ai/kling-video/v2.6/pro/image-to-video",
            "Videos generated without audio cost $0.07 per second. Videos with native audio "
            "cost $0.14 per second",
        ),
    ),
    "fal:fal-ai/kling-video/o1/image-to-video": _usd(
        "0.112",
        "fal.ai/docs/model-api-reference/video-generation-api/kling-video-o1-image-to-video "
        f'(undated, {_READ}): "at $0.112 per second"',
    ),
    "fal:fal-ai/kling-video/v2.1/standard/image-to-video": _usd(
        "0.056",
        _llms(
            "fal-ai/kling-video/v2.1/standard/image-to-video",
            "For 5s video your request will cost $0.28. For every additional second you will "
            "be charged $0.056.",
        ),
    ),
    "fal:fal-ai/kling-video/v2.1/master/text-to-video": _usd(
        "0.28", f"{_ADMART} (unit_price 0.28 per second)"
    ),
    "fal:fal-ai/kling-video/ai-avatar/v2/standard": _usd(
        "0.0562", _renku_fal("kling-video/ai-avatar/v2/standard", "2026-02-10")
    ),
    "fal:fal-ai/bytedance/omnihuman/v1.5": _usd(
        "0.16", _renku_fal("bytedance/omnihuman/v1.5", "2026-01-18")
    ),
    "fal:fal-ai/ltx-2/image-to-video": _usd(
        "0.06",
        "1080p, the default: "
        + _llms(
            "fal-ai/ltx-2/image-to-video",
            "$0.06 per second for 1080p, $0.12 per second for 1440p or $0.24 per second for 2160p",
        ),
    ),
    "fal:fal-ai/wan/v2.2-a14b/image-to-video": _usd(
        "0.08",
        "720p, the default: "
        + _llms(
            "fal-ai/wan/v2.2-a14b/image-to-video",
            "$0.08 per video second for 720p, $0.06 per video second for 580p, $0.04 per video "
            "second for 480p. Video seconds are calculated at 16 frames per second.",
        ),
        r480p="0.04",
    ),
    "fal:fal-ai/wan-25-preview/text-to-video": _usd(
        "0.15",
        f"1080p, the default: {_renku_fal('wan-25-preview/text-to-video', '2026-02-21')}",
        r720p="0.10",
        r480p="0.05",
    ),
    "fal:fal-ai/wan-25-preview/image-to-video": _usd(
        "0.15",
        f"1080p, the default: {_renku_fal('wan-25-preview/image-to-video', '2026-02-21')}",
        r720p="0.10",
        r480p="0.05",
    ),
    "fal:wan/v2.6/text-to-video": _usd(
        "0.15",
        f"1080p, the default: {_renku_fal('wan/v2.6/text-to-video', '2025-12-17')}; "
        f"{_ADMART} (unit_price 0.1 per second, the 720p price)",
        r720p="0.10",
    ),
    "fal:wan/v2.6/image-to-video": _usd(
        "0.15",
        f"1080p, the default: {_renku_fal('wan/v2.6/image-to-video', '2025-12-24')}; "
        f"{_ADMART} (unit_price 0.1 per second, the 720p price)",
        r720p="0.10",
    ),
    # Replicate, added 2026-12-04, at the schema's default resolution, mode and audio.
    "replicate:alibaba/happyhorse-1.0": _usd(
        "0.28",
        f"1080p, the default: {_renku_rep('alibaba/happyhorse-1.0', '2026-04-28')}",
        r720p="0.14",
    ),
    "replicate:bytedance/seedance-1-pro-fast": _usd(
        "0.06",
        f"1080p, the default: {_renku_rep('bytedance/seedance-1-pro-fast', '2025-12-10')}",
        r720p="0.025",
        r480p="0.015",
    ),
    "replicate:bytedance/seedance-1.5-pro": _usd(
        "0.026",
        "audio off, the default ($0.052/s with audio): "
        + _renku_rep("bytedance/seedance-1.5-pro", "2026-02-21"),
    ),
    "replicate:bytedance/seedance-2.0": _usd(
        "0.17",
        "720p, the default (audio on by default; one price): "
        + _renku_rep("bytedance/seedance-2.0", "2026-04-11"),
        r480p="0.07",
    ),
    "replicate:kwaivgi/kling-avatar-v2": _usd(
        "0.056",
        "mode std, the default ($0.11/s pro): "
        + _renku_rep("kwaivgi/kling-avatar-v2", "2026-02-21"),
    ),
    "replicate:kwaivgi/kling-v2.6": _usd(
        "0.14",
        "audio on, the default ($0.07/s without): "
        + _renku_rep("kwaivgi/kling-v2.6", "2026-02-21"),
    ),
    "replicate:kwaivgi/kling-v3-video": _usd(
        "0.224",
        "mode pro without audio, the defaults ($0.336/s with audio; standard $0.168/$0.252): "
        + _renku_rep("kwaivgi/kling-v3-video", "2026-02-21"),
    ),
    "replicate:lightricks/ltx-2.3-pro": _usd(
        "0.06",
        "1080p, the default ($0.12 2k, $0.24 4k): "
        + _renku_rep("lightricks/ltx-2.3-pro", "2026-03-08"),
    ),
    "replicate:lightricks/ltx-2.3-fast": _usd(
        "0.04",
        "1080p, the default ($0.08 2k, $0.16 4k): "
        + _renku_rep("lightricks/ltx-2.3-fast", "2026-03-08"),
    ),
    "replicate:minimax/hailuo-2.3-fast": _usd(
        "0.0316",
        f"768p, the default: {_renku_rep('minimax/hailuo-2.3-fast', '2025-12-17')}",
        r1080p="0.055",
    ),
    "replicate:openai/sora-2": _usd("0.10", _renku_rep("openai/sora-2", "2025-12-10")),
    "replicate:pixverse/pixverse-v5.6": _usd(
        "0.07",
        "540p without audio, the defaults: " + _renku_rep("pixverse/pixverse-v5.6", "2026-02-21"),
        r360p="0.07",
        r720p="0.09",
        r1080p="0.15",
    ),
    "replicate:runwayml/gen-4.5": _usd("0.12", _renku_rep("runwayml/gen-4.5", "2026-02-21")),
    "replicate:vidu/q3-turbo": _usd(
        "0.06",
        "720p, the default (audio on by default; priced by resolution only): "
        + _renku_rep("vidu/q3-turbo", "2026-03-12"),
        r540p="0.04",
        r1080p="0.08",
    ),
    "replicate:wan-video/wan-2.6-i2v": _usd(
        "0.10",
        f"720p, the default: {_renku_rep('wan-video/wan-2.6-i2v', '2026-02-21')}",
        r1080p="0.15",
    ),
    "replicate:wan-video/wan-2.6-t2v": _usd(
        "0.10",
        "720p (size 1280*720), the default: " + _renku_rep("wan-video/wan-2.6-t2v", "2026-02-21"),
        r1080p="0.15",
    ),
    "replicate:wan-video/wan2.6-i2v-flash": _usd(
        "0.05",
        "720p, the default (priced by resolution only): "
        + _renku_rep("wan-video/wan2.6-i2v-flash", "2026-02-21"),
        r1080p="0.075",
    ),
    "replicate:wan-video/wan-2.7-i2v": _usd(
        "0.15",
        f"1080p, the default: {_renku_rep('wan-video/wan-2.7-i2v', '2026-04-11')}",
        r720p="0.10",
    ),
    "replicate:wan-video/wan-2.7-t2v": _usd(
        "0.10",
        "one price at 720p and 1080p: " + _renku_rep("wan-video/wan-2.7-t2v", "2026-04-11"),
    ),
    "replicate:xai/grok-imagine-video": _usd(
        "0.05", _renku_rep("xai/grok-imagine-video", "2026-02-21")
    ),
}
"""Keyed by catalog id (``fal:<endpoint id>``, ``replicate:<owner>/<name>``)."""

_AUDIO_OFF = {
    # model: (the audio-off price in USD/s; the figure each entry's source gives)
    "replicate:google/veo-3.1": "0.20",
    "replicate:google/veo-3.1-fast": "0.10",
    "fal:fal-ai/veo3.1": "0.20",
    "fal:fal-ai/veo3.1/image-to-video": "0.20",
    "fal:fal-ai/veo3.1/first-last-frame-to-video": "0.20",
    "fal:fal-ai/veo3.1/fast": "0.10",
    "fal:fal-ai/veo3.1/fast/image-to-video": "0.10",
    "fal:fal-ai/veo3": "0.20",
    "fal:fal-ai/veo3/fast": "0.10",
    "fal:fal-ai/kling-video/v2.6/pro/image-to-video": "0.07",
    "replicate:kwaivgi/kling-v2.6": "0.07",
}
"""Audio on is the default and the base price; these sources give the price off too."""
for _model, _off in _AUDIO_OFF.items():
    PRICES[_model] = _vary(PRICES[_model], {"audio": True}, ({"audio": False}, _off))
PRICES["replicate:bytedance/seedance-1.5-pro"] = _vary(
    PRICES["replicate:bytedance/seedance-1.5-pro"], {"audio": False}, ({"audio": True}, "0.052")
)
PRICES["replicate:kwaivgi/kling-v3-video"] = _vary(
    PRICES["replicate:kwaivgi/kling-v3-video"],
    {"mode": "pro", "audio": False},
    ({"audio": True}, "0.336"),
    ({"mode": "standard"}, "0.168"),
    ({"mode": "standard", "audio": True}, "0.252"),
)
PRICES["replicate:kwaivgi/kling-avatar-v2"] = _vary(
    PRICES["replicate:kwaivgi/kling-avatar-v2"], {"mode": "std"}, ({"mode": "pro"}, "0.11")
)
# pixverse v5.6: its source prices it without audio only, so audio on is unpriced
PRICES["replicate:pixverse/pixverse-v5.6"] = _vary(
    PRICES["replicate:pixverse/pixverse-v5.6"], {"audio": False}
)


def price_of(model_id: str, operator: Mapping[str, SyncedPrice]) -> SyncedPrice | None:
    """The operator's price for ``model_id``, else the curated one, else None."""
    return operator.get(model_id) or PRICES.get(model_id)
