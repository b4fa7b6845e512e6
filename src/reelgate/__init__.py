"""reelgate: a self-hostable gateway for AI video generation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
