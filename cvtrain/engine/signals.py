"""Stopping a run cleanly when it is asked to: SIGTERM and SIGUSR1 (what SLURM sends before it preempts or ends
a job) and a first SIGINT (Ctrl-C) let the current step finish, write last.ckpt and exit; a second SIGINT stops at
once."""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

from cvtrain.engine import distributed

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
