"""The embedded default's dev account, its key and its credit grant
(``REELGATE_DEV_CREDITS``), so ``make run`` works at once.

The key is ``REELGATE_DEV_API_KEY`` when set; otherwise one is generated on the
first run and kept in ``<data_dir>/dev-api-key`` (mode 0600) so that restarts
print the same key instead of piling up new ones.
"""

from __future__ import annotations

from reelgate.runtime import Runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, new_key

__all__ = ["ensure_dev_account"]


def _dev_key(rt: Runtime) -> str:
    if rt.settings.dev_api_key is not None:
        return rt.settings.dev_api_key.get_secret_value()
    path = rt.settings.data_dir / "dev-api-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as fh:
            fh.write(new_key())
        path.chmod(0o600)
    except FileExistsError:
        pass
    return path.read_text().strip()


async def ensure_dev_account(rt: Runtime) -> str:
    """Create the dev account and its key if missing; return the key (for printing once)."""
    key = _dev_key(rt)
    async with rt.store.begin() as tx:
        if await tx.ensure_account(DEV_ACCOUNT_ID, "dev") and rt.settings.dev_credits:
            await tx.grant(DEV_ACCOUNT_ID, rt.settings.dev_credits * 1000, "dev account grant")
        await tx.ensure_key(DEV_ACCOUNT_ID, key, "dev key")
    return key
