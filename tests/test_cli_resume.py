"""Runs that survive: a run killed (kill -9) or stopped by a signal mid-epoch, with data workers, resumes to exactly
the uninterrupted run's results and weights; a diverged run fails instead of reporting "ok"."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import read_results, run_cli

# 30 steps per epoch, two epochs, two data workers, deterministic kernels.
RUN = (
    "data.train_per_class=24",
    "data.val_per_class=6",
    "data.batch_size=4",
    "data.num_workers=2",
    "trainer.deterministic=true",
    "trainer.epochs=2",
    "trainer.device=cpu",
    "trainer.log_every=1",
    "trainer.checkpoint_every=1",
    "logger.progress=false",
    "logger.tensorboard=false",
)
SAME = ("top1_acc", "top5_acc", "top1_err", "top5_err", "loss", "best_top1_err", "epochs", "steps")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"data.cache_dir={tmp_path_factory.mktemp('shapes')}"


@pytest.fixture(scope="module")
def uninterrupted(cache: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight")
    run_cli("fit", *RUN, cache, f"hydra.run.dir={run_dir}", cwd=run_dir)
    return run_dir


def run_until_step(
    args: list[str], cwd: Path, step: int, send: signal.Signals
) -> subprocess.CompletedProcess:
    """Start `cvtrain fit ARGS`, send `send` once its log reports optimizer step `step`, wait for it to end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvtrain.cli", "fit", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"epoch \d+ step (\d+) ", line)
        if found and int(found.group(1)) >= step:
            proc.send_signal(send)
            break
    rest, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest, "")


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["model"]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    got, want = read_results(run_dir), read_results(reference)
    assert {k: got[k] for k in SAME} == {k: want[k] for k in SAME}
    mine, theirs = weights(run_dir), weights(reference)
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_killed_twice_mid_epoch_with_workers_resumes_to_the_same_run(
    uninterrupted: Path, cache: str, tmp_path: Path
) -> None:
    args = [*RUN, cache, f"hydra.run.dir={tmp_path}", "trainer.resume=auto"]
    positions = []
    for kill_at in (5, 40):  # epoch 1, then epoch 2
        killed = run_until_step(args, tmp_path, kill_at, signal.SIGKILL)
        assert killed.returncode == -signal.SIGKILL
        state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
        positions.append((state["epoch"], state["batches_done"]))
    assert any(batches for _, batches in positions), positions  # at least one kill landed mid-epoch
    assert positions[1] > positions[0]
    run_cli("fit", *args, cwd=tmp_path)
    assert_same_run(tmp_path, uninterrupted)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_checkpoints_and_exits_cleanly(
    sent: signal.Signals, uninterrupted: Path, cache: str, tmp_path: Path
) -> None:
    args = [*RUN, cache, f"hydra.run.dir={tmp_path}", "trainer.checkpoint_every=1000"]
    stopped = run_until_step(args, tmp_path, 7, sent)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stdout
    assert f"stopped by {sent.name}" in stopped.stdout and "trainer.resume=" in stopped.stdout
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and state["batches_done"] == state["step"] >= 7
    run_cli("fit", *args, "trainer.resume=auto", cwd=tmp_path)
    assert_same_run(tmp_path, uninterrupted)


def test_a_diverged_run_fails_whatever_log_every_is(cache: str, tmp_path: Path) -> None:
    proc = run_cli(
        "fit", *RUN, cache, "optim.lr=1e12", "trainer.log_every=1000", "trainer.epochs=1",
        "data.num_workers=0", f"hydra.run.dir={tmp_path}", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "the loss became nan" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
