"""Writing a media file so that it appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["written_atomically"]


@contextlib.contextmanager
def written_atomically(out_path: Path) -> Iterator[str]:
    """A temporary path beside ``out_path`` to write to; it becomes ``out_path`` when the
    block ends, and is removed if the block raises (even a cancel)."""
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
