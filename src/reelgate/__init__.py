"""reelgate: a self-hostable gateway for AI video generation.

The Python SDK is its own distribution, ``reelgate-client`` (``reelgate_client.Client`` /
``reelgate_client.AsyncClient``, in ``clients/python``): the server depends on it, never
the other way round.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
