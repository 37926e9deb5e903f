"""Why a checkpoint could not be written (a full disk, a quota, no permission) and what is on disk then: the
message of `cvtrain.engine.checkpoints.writing.CheckpointWriteError`."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import torch

from cvtrain.engine.checkpoints.reading import peek
from cvtrain.files import format_bytes


def is_write_failure(error: RuntimeError) -> bool:
    """Whether an error torch raised while writing is a failed write (not a bug)."""
    # torch's writer reports a failed write as "[enforce fail at inline_container.cc:NNN] . unexpected pos N vs M",
    # "PytorchStreamWriter failed writing file ...: file write failed" or "basic_ios::clear: iostream error".
    return any(
        s in str(error) for s in ("unexpected pos", "write failed", "inline_container", "iostream error")
    )


def write_failure_message(state: dict[str, Any], path: Path, error: BaseException) -> str:
    """What failed (the file, the errno text, the space it needed), what is on disk, and what to do."""
    needed = _tensor_bytes(state)
    try:
        free: int | None = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    # torch's zip writer turns the OSError of a full disk into "unexpected pos N vs M"; the OSError is its context
    cause_of = error
    while cause_of is not None and not isinstance(cause_of, OSError):
        cause_of = cause_of.__cause__ or cause_of.__context__
    code = getattr(cause_of, "errno", None)
    strerror = getattr(cause_of, "strerror", None)
    reason = strerror or (str(error).splitlines()[0] if str(error) else type(error).__name__)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        cause = f"{reason} ({path.parent} is not writable)"
    else:
        if code == errno.EDQUOT:
            cause = f"the disk quota is exhausted ({reason})"
        elif code == errno.ENOSPC or (free is not None and free < needed):
            cause = f"the disk is full ({reason})"
        else:
            cause = f"the write failed ({reason})"
        room = f"{format_bytes(free)} free" if free is not None else "free space unknown"
        cause += f": it needs about {format_bytes(needed)}, {room} on the file system of {path.parent}"
    on_disk, resume = _on_disk(path)
    step = state.get("step")
    if resume is not None and step is not None:
        resume += f" (the write that failed was of step {step})"
    return (
        f"could not write checkpoint {path}: {cause}. No part of it was left behind (its temporary file is "
        f"removed). {on_disk} Free space there, or put the run directory on a disk with room (hydra.run.dir=DIR, "
        "for a sweep hydra.sweep.dir=DIR)" + (f", then {resume}." if resume else ".")
    )


def _on_disk(failed: Path) -> tuple[str, str | None]:
    """What the checkpoints in `failed`'s folder hold (each is complete: `save_checkpoint` writes whole files or
    none), and how to resume from the latest (None: there is none)."""
    found = {ckpt: _saved_position(ckpt) for ckpt in sorted(failed.parent.glob("*.ckpt"))}
    if not found:
        return f"No checkpoint is on disk in {failed.parent}: the run has nothing to resume from.", None
    listed = "; ".join(
        f"{ckpt.name} ({'the previous one, ' if ckpt == failed else ''}"
        f"{'complete, ' + position[1] if position else 'not readable as a cvtrain checkpoint'})"
        for ckpt, position in found.items()
    )
    readable = {ckpt: position[0] for ckpt, position in found.items() if position}
    latest = max(readable, key=readable.__getitem__, default=None)
    resume = None if latest is None else f"resume from the latest with trainer.resume={latest}"
    return f"On disk in {failed.parent}: {listed}.", resume


def _saved_position(path: Path) -> tuple[int, str] | None:
    """(step, "step S, after epoch E" or "step S, B batches into epoch E") of a checkpoint; None when it cannot
    be read as one. Memory-mapped: the weights are not read."""
    state = peek(path)
    if state is None:
        return None
    try:
        step, epoch, batches = int(state["step"]), int(state["epoch"]), int(state.get("batches_done") or 0)
    except Exception:  # noqa: BLE001 - any file under a .ckpt name: described, never a second error
        return None
    where = f"{batches} batches into epoch {epoch + 1}" if batches else f"after epoch {epoch}"
    return step, f"step {step}, {where}"


def _tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in a nested state: about the size `torch.save` writes."""
    if isinstance(obj, torch.Tensor):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0
