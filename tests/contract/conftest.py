"""The contract tests drive a real ``reelgate api`` process, like the acceptance tests."""

from tests.acceptance.conftest import procs

__all__ = ["procs"]
