"""DataLoader workers die with the process that started them: within 2 s of a kill -9, however they were started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

GRACE_S = 2.0  # from the kill of the parent to the exit of its last worker
WORKER_NAME = "pt_data_worker"  # torch names its worker processes so


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, name, state) of every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
            found[int(entry.name)] = (int(parent), name, state)
    return found


def _workers_of(pid: int, count: int) -> list[int]:
    """The running data workers under process `pid` (its children, or a fork server's), once there are `count`
    (a worker takes its name when it has started)."""
    deadline = time.monotonic() + 60
    while True:
        table = _processes()
        workers = [
            p
            for p, (_, name, state) in table.items()
            if name == WORKER_NAME and state not in "ZX" and _is_under(table, p, pid)
        ]
        if len(workers) >= count or time.monotonic() > deadline:
            return workers
        time.sleep(0.05)


def _is_under(table: dict[int, tuple[int, str, str]], child: int, ancestor: int, depth: int = 2) -> bool:
    parent = table.get(child, (0, "", ""))[0]
    return parent == ancestor or (
        depth > 0 and parent in table and _is_under(table, parent, ancestor, depth - 1)
    )


def _survivors_of_a_kill(proc: subprocess.Popen, workers: list[int]) -> list[int]:
    """kill -9 `proc`; those of its `workers` still running GRACE_S later (then killed: the test leaves none)."""
    killed = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    while _running(workers) and time.monotonic() - killed <= GRACE_S:
        time.sleep(0.02)
    survivors = _running(workers)
    for worker in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
    return survivors


def _running(workers: list[int]) -> list[int]:
    """Those of `workers` that have not exited (a zombie has; a pid taken by another process is not a worker)."""
    table = _processes()
    return [w for w in workers if w in table and table[w][1] == WORKER_NAME and table[w][2] not in "ZX"]


@contextlib.contextmanager
def _started(args: list[str], cwd: Path) -> Iterator[subprocess.Popen]:
    """The process `args` (this checkout's cvtrain), its output piped; killed at the end if still running."""
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _wait_for_line(proc: subprocess.Popen, text: str) -> None:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"the process exited {proc.wait()} before printing {text!r}:\n{''.join(lines)}")


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's parent-death signal is Linux's"
)
def test_the_data_workers_of_a_killed_fit_exit_with_it(tmp_path: Path) -> None:
    with _started(
        [
            sys.executable, "-m", "cvtrain.cli", "fit", "data.train_per_class=8", "data.val_per_class=2",
            "data.batch_size=4", "data.num_workers=2", "trainer.epochs=2", "trainer.device=cpu",
            "logger=[csv]", f"data.cache_dir={tmp_path / 'shapes'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
    ) as proc:  # fmt: skip
        # The training workers (persistent) then wait for the next epoch: idle, as most of the time in a real run.
        _wait_for_line(proc, "epoch 1 trained in")
        workers = _workers_of(proc.pid, count=2)
        assert len(workers) >= 2, workers
        assert _survivors_of_a_kill(proc, workers) == []


IDLE_LOADER = """
import sys, time
from torch.utils.data import DataLoader
from cvtrain.workers import worker_init_fn

loader = DataLoader(
    range(10**6), batch_size=2, num_workers=2, multiprocessing_context=sys.argv[1], worker_init_fn=worker_init_fn()
)
for batch in loader:
    print("first batch", flush=True)
    time.sleep(120)  # the workers have prefetched their batches and wait
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="pidfd and the parent-death signal are Linux's"
)
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_started_another_way_also_exit_with_their_starter(tmp_path: Path, start_method: str) -> None:
    with _started([sys.executable, "-c", IDLE_LOADER, start_method], tmp_path) as proc:
        _wait_for_line(proc, "first batch")
        workers = _workers_of(proc.pid, count=2)
        assert len(workers) == 2, workers
        assert _survivors_of_a_kill(proc, workers) == []
