"""The client's own version (the server's is ``reelgate.__version__``)."""

__version__ = "0.1.0"
