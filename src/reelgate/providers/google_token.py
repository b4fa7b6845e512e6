"""OAuth access tokens for Vertex AI: a fixed one, or one google-auth mints and refreshes.

Google's own clients never take a bare token: they load a service-account key file
or Application Default Credentials (``google.auth.default()``) and refresh the
token before it runs out. :class:`GoogleToken` does the same for the Veo adapter:

- ``GoogleToken.fixed(token)``: ``REELGATE_VERTEX_ACCESS_TOKEN`` as given (about an
  hour of life; tests and quick trials);
- ``GoogleToken.from_service_account_file(path)``: the key file's ``client_email`` and
  private key sign a JWT that its ``token_uri`` trades for an access token
  (google-auth's ``service_account.Credentials``);
- ``GoogleToken.from_adc()``: whatever ``google.auth.default()`` finds (the
  ``GOOGLE_APPLICATION_CREDENTIALS`` file, gcloud's user credentials, the metadata
  server on Google Cloud).

google-auth is synchronous: a refresh runs in a thread, one at a time, and only when
the token is missing or within ``REFRESH_MARGIN`` of its expiry. The token is never
logged; ``current`` is what the adapter scrubs from upstream messages.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reelgate.errors import InvalidRequest, TransientError

__all__ = ["CLOUD_PLATFORM_SCOPE", "REFRESH_MARGIN", "GoogleToken"]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = timedelta(minutes=5)
"""Refresh this long before expiry (google-auth itself treats a token as stale 3 min 45 s
before it expires)."""


class GoogleToken:
    def __init__(self, *, fixed: str | None = None, credentials: Any = None) -> None:
        if (fixed is None) == (credentials is None):
            raise ValueError("a GoogleToken is either fixed or refreshed from credentials")
        self._fixed = fixed
        self._credentials = credentials
        self._lock = asyncio.Lock()
        self.refreshes = 0
        """How many times a token was fetched (for tests and the providers check)."""

    @classmethod
    def fixed(cls, token: str) -> GoogleToken:
        return cls(fixed=token)

    @classmethod
    def from_service_account_file(cls, path: Path) -> GoogleToken:
        from google.oauth2 import service_account

        try:
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(path), scopes=[CLOUD_PLATFORM_SCOPE]
            )
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"REELGATE_VERTEX_CREDENTIALS_FILE {path} is not a service-account key file: "
                f"{type(exc).__name__}"
            ) from None
        return cls(credentials=credentials)

    @classmethod
    def from_adc(cls) -> tuple[GoogleToken, str | None]:
        """Application Default Credentials, and the project they name (if any)."""
        import google.auth

        credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        return cls(credentials=credentials), project

    @property
    def current(self) -> str | None:
        """The token in hand (None before the first refresh)."""
        if self._fixed is not None:
            return self._fixed
        token = getattr(self._credentials, "token", None)
        return token if isinstance(token, str) else None

    def _fresh(self) -> bool:
        creds = self._credentials
        if creds.token is None:
            return False
        expiry = creds.expiry  # naive UTC in google-auth
        if expiry is None:
            return True
        left: timedelta = expiry.replace(tzinfo=UTC) - datetime.now(UTC)
        return left > REFRESH_MARGIN

    async def get(self) -> str:
        """A token good for at least ``REFRESH_MARGIN`` (refreshed first if need be)."""
        if self._fixed is not None:
            return self._fixed
        async with self._lock:
            if not self._fresh():
                await asyncio.to_thread(self._refresh)
            token: str = self._credentials.token
            return token

    def _refresh(self) -> None:
        import google.auth.exceptions
        from google.auth.transport.requests import Request

        try:
            self._credentials.refresh(Request())
        except google.auth.exceptions.RefreshError as exc:
            # e.g. invalid_grant: a deleted or disabled key. The message names no secret.
            why = exc.args[0] if exc.args else type(exc).__name__
            raise InvalidRequest(
                f"Google refused to issue a Vertex AI access token ({why}). "
                "Check REELGATE_VERTEX_CREDENTIALS_FILE or the Application Default Credentials.",
                code="upstream_auth",
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise TransientError(
                f"Google's token endpoint could not be reached: {type(exc).__name__}",
                code="upstream_auth_unreachable",
            ) from None
        self.refreshes += 1
