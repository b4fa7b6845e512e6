"""reelgate: a self-hostable gateway for AI video generation.

The Python SDK is ``reelgate.Client`` / ``reelgate.AsyncClient`` (``reelgate.client``).
"""

__version__ = "0.1.0"

from reelgate.client import AsyncClient, Client  # after __version__: the SDK reads it

__all__ = ["AsyncClient", "Client", "__version__"]
