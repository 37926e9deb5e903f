"""Writing files so that a crash or a concurrent reader never sees half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | Path, *, fsync: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on success it replaces `path` in one rename, on any failure it is removed.

    The temporary file (`.<name>.<random>.tmp`) sits in the same folder, so the rename never crosses file systems;
    a reader (another DataLoader worker, a resumed run) sees the previous file or the whole new one. `fsync=True`
    also forces the bytes to disk before the rename (checkpoints: the file must survive a power loss). Only a
    process killed outright (kill -9, a node lost) leaves the temporary file behind: see
    `cvtrain.engine.checkpoints.writing.remove_stale_temporaries`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_bytes(size: float) -> str:
    """`1536` -> `1.5 kB`, `912_000_000` -> `912.0 MB` (decimal units, as `df -H` and file managers show)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
