"""Runs that survive: a run killed (kill -9) or stopped by a signal mid-epoch or mid-evaluation, with data workers,
resumes to exactly the uninterrupted run's results and weights; `cvtrain eval` stopped by a signal says so; a
diverged run fails instead of reporting "ok"."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import read_results, run_cli, run_until, write_image

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
    "logger=[csv]",
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

    def reached(line: str) -> bool:
        found = re.search(r"epoch \d+ step (\d+) ", line)
        return found is not None and int(found.group(1)) >= step

    return run_until(["fit", *args], cwd, reached, send)


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


# 5 steps per epoch and 500 validation images one per batch: a signal sent as an epoch's training ends lands
# during its evaluation.
LONG_EVAL = (
    "data.train_per_class=4",
    "data.val_per_class=100",
    "data.batch_size=4",
    "data.eval_batch_size=1",
    "data.num_workers=2",
    "trainer.deterministic=true",
    "trainer.epochs=2",
    "trainer.device=cpu",
    "trainer.log_every=1",
    "logger=[csv]",
)
EVAL_BATCHES = 500


@pytest.fixture(scope="module")
def uninterrupted_long_eval(cache: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight_long_eval")
    run_cli("fit", *LONG_EVAL, cache, f"hydra.run.dir={run_dir}", cwd=run_dir)
    return run_dir


def evaluated(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv's rows: epoch, step and the metrics of each evaluation."""
    with (run_dir / "metrics.csv").open() as f:
        return [{k: row[k] for k in ("epoch", "step", "top1_err", "loss")} for row in csv.DictReader(f)]


def test_a_stop_signal_during_the_evaluation_checkpoints_at_once_and_the_resume_evaluates_again(
    uninterrupted_long_eval: Path, cache: str, tmp_path: Path
) -> None:
    args = [*LONG_EVAL, cache, f"hydra.run.dir={tmp_path}"]
    stopped = run_until(["fit", *args], tmp_path, lambda line: "epoch 1 trained in" in line, signal.SIGTERM)
    out = stopped.stdout
    assert stopped.returncode == 1 and "Traceback" not in out, out
    found = re.search(r"stopped by SIGTERM at step 5, during the evaluation after epoch 1 \(batch (\d+) of (\d+)\), "
                      r"which the resumed run does again first; (\S+) holds everything to continue exactly", out)  # fmt: skip
    assert found is not None, out
    assert int(found.group(1)) < int(found.group(2)) == EVAL_BATCHES  # stopped before its end
    assert found.group(3) == str(tmp_path / "checkpoints" / "last.ckpt")
    assert "epoch 1 eval:" not in out and not (tmp_path / "metrics.csv").exists()
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (state["epoch"], state["batches_done"], state["step"], state["pending_evaluation"]) == (1, 0, 5, 1)
    assert not (tmp_path / "checkpoints" / "best.ckpt").exists()  # that evaluation chose no best yet

    resumed = run_cli("fit", *args, "trainer.resume=auto", cwd=tmp_path)
    assert "its evaluation after epoch 1 was interrupted: evaluating again first" in resumed.stdout
    assert evaluated(tmp_path) == evaluated(uninterrupted_long_eval)  # epoch 1 evaluated once, then epoch 2
    assert_same_run(tmp_path, uninterrupted_long_eval)
    rng, reference_rng = (torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["rng"]
                          for d in (tmp_path, uninterrupted_long_eval))  # fmt: skip
    assert torch.equal(rng["torch"], reference_rng["torch"])  # the random draws of the run are the same too
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    reference = torch.load(uninterrupted_long_eval / "checkpoints" / "best.ckpt", weights_only=True)
    assert (best["epoch"], best["step"], best["pending_evaluation"]) == (
        reference["epoch"],
        reference["step"],
        None,
    )


@pytest.mark.parametrize(
    ("save", "unwritten"),
    [((), "results.json was not written"), (("eval.save_predictions=true",), "results.json was not written, nor "
                                                                             "predictions.json")],
)  # fmt: skip
def test_eval_stopped_by_sigterm_says_so_and_writes_no_results(
    save: tuple[str, ...], unwritten: str, uninterrupted_long_eval: Path, tmp_path: Path
) -> None:
    ckpt = uninterrupted_long_eval / "checkpoints" / "last.ckpt"
    stopped = run_until(
        ["eval", f"ckpt={ckpt}", *save, f"hydra.run.dir={tmp_path}"],
        tmp_path,
        lambda line: f"eval {ckpt} (epoch 2, step 10) on shapes: {EVAL_BATCHES} val images" in line,
        signal.SIGTERM,
    )
    out = stopped.stdout
    assert stopped.returncode == 1 and "Traceback" not in out, out
    found = re.search(r"cvtrain eval stopped by SIGTERM during the evaluation, after (\d+) of its (\d+) batches: "
                      rf"{unwritten}; run the same command again to evaluate (\S+)\.\n", out)  # fmt: skip
    assert found is not None, out
    assert int(found.group(1)) < int(found.group(2)) == EVAL_BATCHES and found.group(3) == str(ckpt)
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "predictions.json").exists()


def test_predict_stopped_by_sigterm_says_so_and_writes_no_predictions(
    uninterrupted_long_eval: Path, tmp_path: Path
) -> None:
    ckpt = uninterrupted_long_eval / "checkpoints" / "last.ckpt"
    inputs = tmp_path / "pics"
    for i in range(300):
        write_image(inputs / f"{i}.png", size=(32, 32))
    stopped = run_until(
        [
            "predict",
            f"ckpt={ckpt}",
            f"inputs={inputs}",
            "predict.batch_size=1",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
        lambda line: f"predict {ckpt} on 300 image(s)" in line,
        signal.SIGTERM,
    )
    out = stopped.stdout
    assert stopped.returncode == 1 and "Traceback" not in out, out
    found = re.search(r"cvtrain predict stopped by SIGTERM during the evaluation, after (\d+) of its 300 batches: "
                      r"predictions.json was not written; run the same command again to predict (\S+)\.\n", out)  # fmt: skip
    assert found is not None, out
    assert int(found.group(1)) < 300 and found.group(2) == str(inputs)
    assert not (tmp_path / "run" / "predictions.json").exists()


def test_a_diverged_run_fails_whatever_log_every_is(cache: str, tmp_path: Path) -> None:
    proc = run_cli(
        "fit", *RUN, cache, "optim.lr=1e12", "trainer.log_every=1000", "trainer.epochs=1",
        "data.num_workers=0", f"hydra.run.dir={tmp_path}", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "the loss became nan" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
