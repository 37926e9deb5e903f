"""DataLoader worker processes: `worker_init_fn()` is the `worker_init_fn` of every DataLoader cvtrain makes.

Each worker seeds numpy, and on Linux is killed the moment the process that started it exits, however it exits
(kill -9, the OOM killer, a job's cleanup). Otherwise torch's own watchdog notices a dead parent only every 5 s
(never under the forkserver start method), and the worker lives on, holding memory, files and shared memory.
"""

from __future__ import annotations

import ctypes
import functools
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

import numpy as np
import torch

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def worker_init_fn() -> Callable[[int], None]:
    """Call it in the process that starts the workers (where the DataLoader is made and iterated)."""
    return functools.partial(_start_worker, starter=os.getpid())


def _start_worker(worker_id: int, starter: int) -> None:
    _exit_with(starter)
    # torch seeds `random` and itself per worker; numpy needs it too, or every worker draws the same numbers.
    np.random.seed(torch.initial_seed() % 2**32)


def _exit_with(starter: int) -> None:
    """Have this process SIGKILLed the moment `starter` exits (Linux; elsewhere torch's watchdog remains)."""
    if not sys.platform.startswith("linux"):
        return
    if os.getppid() == starter:  # fork, spawn: the kernel signals the worker when its parent exits
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
            # The parent is the thread that forked the worker (cvtrain iterates its loaders in the main thread).
            # One that exited before the call sent nothing: the worker was handed to another parent.
            if os.getppid() != starter:
                os.kill(os.getpid(), signal.SIGKILL)
            return
    # forkserver (the parent is the fork server, which outlives `starter`: its workers keep it open), or prctl
    # refused: a thread waits for `starter` itself to exit.
    try:
        starter_fd = os.pidfd_open(starter)
    except ProcessLookupError:  # it already exited
        os.kill(os.getpid(), signal.SIGKILL)
    except OSError:  # a kernel before 5.3
        return
    threading.Thread(
        target=_kill_when_exited, args=(starter_fd,), name="cvtrain-parent-watch", daemon=True
    ).start()


def _kill_when_exited(process_fd: int) -> None:
    poll = select.poll()
    poll.register(process_fd, select.POLLIN)  # readable once the process has exited
    poll.poll()
    os.kill(os.getpid(), signal.SIGKILL)
