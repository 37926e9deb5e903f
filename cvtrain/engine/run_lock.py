"""One cvtrain run per directory: a run holds an exclusive lock on its run directory (a sweep on its sweep
directory) for its lifetime, so that a second run into the same directory is refused instead of overwriting its
checkpoints, metrics and results.

The lock is `flock` on `.cvtrain.lock` in the directory. The kernel releases it when its holder exits, however it
exits (kill -9, a crash), so a crashed run's lock is never stale. The file names the holder (command, host, pid,
start time) for the refusal message. Only the process of global rank 0 takes it: the other processes of the same
DDP run share the directory with it. On NFS, Linux (2.6.12 and later) implements `flock` with NFS byte-range
locks, so a run on another node sees it too; a file system without locking (Lustre mounted without `-o flock`)
gets a warning and no lock.

It is taken by a Hydra callback (`conf/config.yaml`) when the run starts, before Hydra writes `.hydra/` or the
log file into the directory: a refused run has written nothing there.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cvtrain.engine.reporting import console
from cvtrain.errors import CvtrainError

LOCK_FILE = ".cvtrain.lock"
log = logging.getLogger("cvtrain")
# errno values of a file system that does not implement locking (the lock is then skipped with a warning)
_NO_LOCKING = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)

_held: int | None = None  # the descriptor of the lock this process holds


class RunDirInUse(CvtrainError):
    """The run directory is locked by another cvtrain process."""


def lock_run_dir(run_dir: str | Path, command: str, setting: str = "hydra.run.dir") -> None:
    """Lock `run_dir` (creating it) for this process until it exits or `release` is called, and write who holds
    it; raise `RunDirInUse` naming the holder when another process holds it. `setting` is what the user changes
    to choose another directory. A lock this process held before (an earlier run in the same process) is
    released first: a process runs one run at a time."""
    release()
    global _held
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not O_TRUNC: the holder's record stays readable
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_holder(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise RunDirInUse(
                f"{_kind(setting)} {run_dir} is in use by another run: {_describe(holder)}. Wait for it to "
                f"finish, or choose another {setting}=DIR."
            ) from None
        if e.errno in _NO_LOCKING:
            log.warning(
                "cannot lock %s (%s): this file system does not support locks, so another run started into %s "
                "would not be refused",
                path,
                e.strerror,
                run_dir,
            )
            return
        raise
    _write_holder(fd, command)
    _held = fd


def release() -> None:
    """Give up the lock this process holds (if any), leaving the file empty: nobody holds it."""
    global _held
    if _held is None:
        return
    fd, _held = _held, None
    os.ftruncate(fd, 0)
    os.close(fd)  # closing the last descriptor releases the flock


def _describe(holder: dict[str, Any] | None) -> str:
    """'cvtrain fit, pid 1234 on host node1, started 2026-03-01 10:02:03' from a lock file's record."""
    if not holder:
        return "a cvtrain process that has not written its details yet"
    return (
        f"cvtrain {holder.get('command', '?')}, pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"started {holder.get('started', '?')}"
    )


def _kind(setting: str) -> str:
    return "sweep directory" if setting == "hydra.sweep.dir" else "run directory"


def _write_holder(fd: int, command: str) -> None:
    record = {
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv[1:],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)  # a reader on another node (NFS) sees it


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        record = json.loads(os.pread(fd, 65536, 0) or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _close_in_child() -> None:
    """A forked child (a DataLoader worker) inherits the descriptor; closing its copy leaves the parent's lock
    held, and the lock then goes with the parent alone (not with workers that outlive a killed parent)."""
    global _held
    if _held is not None:
        os.close(_held)
        _held = None


os.register_at_fork(after_in_child=_close_in_child)


def _is_global_rank_0() -> bool:
    # The process group does not exist yet when the run starts: torchrun's environment says the rank.
    return os.environ.get("RANK", "0") == "0"


class RunDirLock(Callback):
    """Hydra callback: lock the run directory (a sweep: the sweep directory) before Hydra writes into it. A refusal
    prints one line and exits 2, like the other checks made before a run starts."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._lock(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._lock(config, "hydra.sweep.dir")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release()

    def _lock(self, config: DictConfig, setting: str) -> None:
        if not _is_global_rank_0():
            return
        command = str(config.get("command", "?")).replace("_", " ")
        run_dir = str(OmegaConf.select(config, setting))  # as Hydra resolves it for the run
        try:
            lock_run_dir(run_dir, command, setting)
        except CvtrainError as e:
            console.print(f"cvtrain {command}: {e}", style="red", highlight=False)
            raise SystemExit(2) from None
