"""One run per directory: a second `fit` (or a `trainer.resume=auto`, or a sweep) into a directory another run is
using is refused before it writes anything there, naming the running process; a killed holder's lock is free."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cvtrain.engine import run_lock
from tests.conftest import FAST, run_cli

HOLD = """
import sys, time
from cvtrain.engine import run_lock
run_lock.lock_run_dir(sys.argv[1], "fit", sys.argv[2])
print("locked", flush=True)
time.sleep(300)
"""

HOLD_AND_FORK = """
import os, sys, time
from cvtrain.engine import run_lock
run_lock.lock_run_dir(sys.argv[1], "fit")
child = os.fork()
if child == 0:  # outlives its parent, as a DataLoader worker of a killed run can for a few seconds
    os.close(1)  # the pipe the test reads to its end
    os.close(2)
    time.sleep(300)
    os._exit(0)
print(child, flush=True)
time.sleep(300)
"""


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(proc: subprocess.Popen, text: str) -> str:
    """The first line of `proc`'s output containing `text` (failing if it ends first)."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} never came:\n{''.join(seen)}")


def refusal(kind: str, directory: Path, setting: str) -> str:
    """The line a run refused for `directory` prints, read from the lock file of the process holding it."""
    holder = json.loads((directory / run_lock.LOCK_FILE).read_text())
    return (
        f"cvtrain fit: {kind} {directory} is in use by another run: cvtrain fit, pid {holder['pid']} on host "
        f"{socket.gethostname()}, started {holder['started']}. Wait for it to finish, or choose another "
        f"{setting}=DIR.\n"
    )


@pytest.fixture
def cache(tmp_path: Path) -> str:
    return f"data.cache_dir={tmp_path / 'shapes'}"


def test_a_second_fit_and_a_resume_into_a_running_fits_directory_are_refused_until_it_is_killed(
    cache: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    small = [*FAST, cache, "data.train_per_class=8", "data.val_per_class=2", "data.batch_size=4"]
    running = start(
        ["-m", "cvtrain.cli", "fit", *small, "data.num_workers=2", "trainer.epochs=1000", f"hydra.run.dir={run_dir}"],
        tmp_path,
    )  # fmt: skip
    try:
        wait_for(running, "epoch 1 step 1 ")  # training, with its data workers
        holder = json.loads((run_dir / run_lock.LOCK_FILE).read_text())
        assert (holder["command"], holder["pid"], holder["host"]) == (
            "fit",
            running.pid,
            socket.gethostname(),
        )
        for second in (["optim.lr=0.02"], ["trainer.resume=auto"]):
            refused = run_cli("fit", *small, *second, f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False)
            assert refused.returncode == 2
            assert (
                refused.stdout == refusal("run directory", run_dir, "hydra.run.dir") and refused.stderr == ""
            )
        overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()  # written by the running fit alone
        assert (
            "trainer.epochs=1000" in overrides and "optim.lr=" not in overrides and "resume=" not in overrides
        )
    finally:
        running.kill()  # SIGKILL: the kernel drops its lock; its data workers may outlive it for a moment
        running.communicate()
    after = run_cli("fit", *small, "trainer.epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert f"results in {run_dir}" in after.stdout
    assert (run_dir / run_lock.LOCK_FILE).read_text() == ""  # released when it ended


def test_a_sweep_into_a_sweep_directory_in_use_is_refused_before_writing_anything(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    holder = start(["-c", HOLD, str(sweep_dir), "hydra.sweep.dir"], tmp_path)
    try:
        wait_for(holder, "locked")
        refused = run_cli(
            "fit",
            "-m",
            *FAST,
            "optim.lr=0.01,0.02",
            f"hydra.sweep.dir={sweep_dir}",
            cwd=tmp_path,
            check=False,
        )
        assert refused.returncode == 2
        assert refused.stdout == refusal("sweep directory", sweep_dir, "hydra.sweep.dir")
        assert sorted(p.name for p in sweep_dir.iterdir()) == [run_lock.LOCK_FILE]  # no job, no summary
    finally:
        holder.kill()
        holder.communicate()


def test_the_lock_goes_with_its_holder_not_with_a_forked_child_that_outlives_it(tmp_path: Path) -> None:
    holder = start(["-c", HOLD_AND_FORK, str(tmp_path)], tmp_path)
    child = int(wait_for(holder, ""))
    try:
        with pytest.raises(run_lock.RunDirInUse, match=f"pid {holder.pid} on host"):
            run_lock.lock_run_dir(tmp_path, "fit")
        holder.kill()
        holder.communicate()
        os.kill(child, 0)  # still running, with the descriptor it inherited
        run_lock.lock_run_dir(tmp_path, "fit")
        assert json.loads((tmp_path / run_lock.LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        run_lock.release()
        os.kill(child, signal.SIGKILL)


def test_a_file_system_without_locks_gets_a_warning_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="cvtrain"):
        run_lock.lock_run_dir(tmp_path, "fit")
    assert caplog.messages == [
        f"cannot lock {tmp_path / run_lock.LOCK_FILE} (No locks available): this file system does not support "
        f"locks, so another run started into {tmp_path} would not be refused"
    ]
