"""Writing checkpoints: atomically and fsync'ed, a failed write explained, the leftovers of a killed write removed."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from cvtrain.engine.checkpoints.write_failure import is_write_failure, write_failure_message
from cvtrain.errors import CvtrainError
from cvtrain.files import atomic_write, format_bytes

log = logging.getLogger(__name__)

# `cvtrain.files.atomic_write` names its temporary `.<name>.<random>.tmp`; ours are `.<something>.ckpt.<random>.tmp`.
STALE_TEMPORARY = re.compile(r"^\..+\.ckpt\.[A-Za-z0-9_]+\.tmp$")


class CheckpointWriteError(CvtrainError):
    """A checkpoint that could not be written (disk full, no permission); the message says what is on disk."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write atomically and fsync'ed (`cvtrain.files.atomic_write`): a crash mid-write leaves the previous
    checkpoint intact, never a truncated one. A failed write (disk full) removes its temporary file and raises a
    `CheckpointWriteError` saying what it needed and what to do."""
    path = Path(path)
    try:
        with atomic_write(path, fsync=True) as f:
            torch.save(state, f)
    except (OSError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not is_write_failure(e):
            raise  # not an I/O problem: a bug, keep the traceback
        raise CheckpointWriteError(write_failure_message(state, path, e)) from e


def remove_stale_temporaries(checkpoint_dir: str | Path) -> int:
    """Remove the temporary files a process killed while writing a checkpoint left in `checkpoint_dir`
    (`.last.ckpt.<random>.tmp`, `.best.ckpt.<random>.tmp`: `atomic_write`'s names for `*.ckpt` files) and return
    how many. Nothing else is touched: not the checkpoints, not other files, not links or folders. Call it on
    rank 0 only, before this run writes any checkpoint (at start-up and on resume): a temporary of a write in
    progress looks the same."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return 0
    count = size = 0
    for entry in folder.iterdir():
        if not STALE_TEMPORARY.match(entry.name) or entry.is_symlink() or not entry.is_file():
            continue
        try:
            nbytes = entry.stat().st_size
            entry.unlink()
        except FileNotFoundError:
            continue
        count += 1
        size += nbytes
    if count:
        log.info(
            "removed %d stale temporary checkpoint file%s (%s) left in %s by an interrupted write",
            count,
            "" if count == 1 else "s",
            format_bytes(size),
            folder,
        )
    return count
