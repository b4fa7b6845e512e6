"""Per-account availability rules of the model guide.

``allow_list``  (sora-2, "limited availability"): the account must be on the
                model's allow-list (account flag ``allowed_models``).
``prc_opt_in``  (wan-2-1, "PRC opt-in required"): the account must have opted
                in to processing in the People's Republic of China
                (account flag ``prc_opt_in``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelgate.catalog.models import ModelSpec

__all__ = ["access_denied"]


def access_denied(spec: ModelSpec, flags: Mapping[str, Any]) -> str | None:
    """Why this account may not use ``spec``, or None if it may."""
    if spec.availability == "allow_list" and spec.id not in flags.get("allowed_models", []):
        return (
            f"{spec.id} has limited availability and this account is not on its allow-list; "
            "ask the gateway operator to add it."
        )
    if spec.availability == "prc_opt_in" and not flags.get("prc_opt_in", False):
        return (
            f"{spec.id} runs in the People's Republic of China and requires the account's PRC "
            "opt-in; ask the gateway operator to enable it for this account."
        )
    return None
