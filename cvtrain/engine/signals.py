"""Stopping a run cleanly when it is asked to: SIGTERM and SIGUSR1 (what SLURM sends before it preempts or ends
a job) and a first SIGINT (Ctrl-C) let the current training step or evaluation batch finish, write last.ckpt and
exit; a second SIGINT stops at once."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

from cvtrain.engine import distributed
from cvtrain.errors import CvtrainError

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopRequest:
    """A context manager that records the first stop signal instead of dying of it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

    def requested(self) -> bool:
        """Whether any process was asked to stop (all processes agree, so they stop at the same step)."""
        return distributed.any_rank(self.signum is not None)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"


class Stopped(CvtrainError):
    """Work stopped on a stop signal; the message says where, and how to continue."""


class EvaluationStopped(Stopped):
    """An evaluation stopped on a signal before its last batch: it has no metrics."""

    def __init__(self, signal_name: str, batches_done: int, total: int):
        self.signal_name, self.batches_done, self.total = signal_name, batches_done, total
        super().__init__(
            f"stopped by {signal_name} during the evaluation, after {batches_done} of its {total} batches"
        )


class RunStopped(Stopped):
    """A training run stopped on a signal after writing last.ckpt; `where` says at which point of the run."""

    def __init__(self, signal_name: str, where: str, ckpt: Path):
        super().__init__(
            f"stopped by {signal_name} {where}; {ckpt} holds everything to continue exactly: run the same command "
            f"with trainer.resume={ckpt} (or trainer.resume=auto hydra.run.dir={ckpt.parent.parent})."
        )
