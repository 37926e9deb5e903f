"""`trainer.on_nan`: a NaN injected into the loss of a linear model's training (`test_loop`'s run: 8 steps an epoch,
a log line every 4 steps) stops the run, or rolls it back to the epoch's start with half the learning rate, at most
`nan_retries` times, and a run stopped after a rollback resumes to the uninterrupted run's weights."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from cvtrain.contracts.batch import Batch
from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.training import resume
from cvtrain.engine.loop import fit
from cvtrain.engine.rollback import halve_learning_rate
from cvtrain.engine.state import FitProgress, FitSetup
from cvtrain.engine.step_faults import Diverged
from cvtrain.errors import CvtrainError
from tests.engine.test_loop import RegressionTask, make_run


class Killed(Exception):
    """Stands for the process dying (kill -9) at a chosen step: nothing after it runs."""


class FaultyTask(RegressionTask):
    """Its loss is NaN at the training steps (1-based calls) in `nan_at`, each once, and from `nan_from` on; the
    gradients and so the weights turn NaN with it. Raises `Killed` at call `kill_at`."""

    def __init__(self, nan_at: tuple[int, ...] = (), nan_from: int | None = None, kill_at: int | None = None):
        self.nan_at, self.nan_from, self.kill_at, self.calls = set(nan_at), nan_from, kill_at, 0

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls == self.kill_at:
            raise Killed
        loss = super().training_step(model, batch)["loss"]
        if self.calls in self.nan_at or (self.nan_from is not None and self.calls >= self.nan_from):
            self.nan_at.discard(self.calls)
            loss = loss * float("nan")
        return {"loss": loss}


def rolling_back(tmp_path: Path, task: FaultyTask, retries: int = 3, **kwargs: int) -> FitSetup:
    run = make_run(tmp_path, task=task, **kwargs)
    run.on_nan, run.nan_retries = "rollback", retries
    return run


def learning_rates(run: FitSetup) -> list[float]:
    return [g["lr"] for g in run.optimizer.param_groups] + list(run.scheduler.base_lrs)


def test_stop_ends_the_run_at_the_first_nan_and_names_rollback(tmp_path: Path) -> None:
    run = make_run(tmp_path, task=FaultyTask(nan_at=(11,)))
    with pytest.raises(Diverged) as e:
        fit(run, FitProgress())
    assert str(e.value) == (
        "the loss became nan at step 12 (epoch 2). Lower optim.lr, set trainer.grad_clip, or use "
        "trainer.precision=32; or trainer.on_nan=rollback to go back to the last good state with half the "
        "learning rate."
    )


def test_rollback_restores_the_epoch_start_halves_the_lr_says_so_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run, progress = rolling_back(tmp_path / "nan", FaultyTask(nan_at=(11,))), FitProgress()
    with caplog.at_level(logging.WARNING, logger="cvtrain"):
        final = fit(run, progress)
    assert caplog.messages == [
        "the loss became nan at step 12 (epoch 2): rolled back to step 8 (epoch 2) and halved optim.lr 0.3 -> 0.15 "
        "(rollback 1 of trainer.nan_retries=3)"
    ]
    assert progress.step == 24 and progress.nan_rollbacks == 1 and final["mse"] < 1e-3
    assert learning_rates(run) == [0.15, 0.15]
    # The same as a run that trains epoch 1 at lr 0.3, then epochs 2 and 3 at 0.15, with no NaN at all.
    fit(make_run(tmp_path / "ref", max_steps=8), FitProgress())
    reference, reference_progress = make_run(tmp_path / "ref"), FitProgress()
    resume(reference, reference_progress, tmp_path / "ref" / "checkpoints" / "last.ckpt")
    halve_learning_rate(reference.optimizer, reference.scheduler)
    fit(reference, reference_progress)
    assert torch.equal(run.model.weight, reference.model.weight)


def test_rollbacks_stop_after_nan_retries_with_the_advice(tmp_path: Path) -> None:
    run, progress = rolling_back(tmp_path, FaultyTask(nan_from=3), retries=2), FitProgress()
    with pytest.raises(CvtrainError) as e:
        fit(run, progress)
    assert str(e.value) == (
        "the loss became nan at step 4 (epoch 1) after 2 rollbacks (trainer.nan_retries=2), each halving the "
        "learning rate (optim.lr is now 0.075). Lower optim.lr, set trainer.grad_clip, or use trainer.precision=32."
    )
    assert progress.nan_rollbacks == 2 and learning_rates(run) == [0.075, 0.075]


def test_the_halving_is_in_the_checkpoint_and_a_resumed_run_continues_identically(tmp_path: Path) -> None:
    straight, straight_progress = rolling_back(tmp_path / "straight", FaultyTask(nan_at=(11,))), FitProgress()
    fit(straight, straight_progress)
    # Killed after the rollback (step 12 -> 8), before the epoch's end: last.ckpt is the one the rollback wrote.
    with pytest.raises(Killed):
        fit(rolling_back(tmp_path / "killed", FaultyTask(nan_at=(11,), kill_at=15)), FitProgress())
    path = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    state = load_checkpoint(path)
    assert (state["epoch"], state["batches_done"], state["step"], state["nan_rollbacks"]) == (1, 0, 8, 1)
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == [0.15]
    resumed, resumed_progress = rolling_back(tmp_path / "killed", FaultyTask()), FitProgress()
    resume(resumed, resumed_progress, path)
    fit(resumed, resumed_progress)
    assert resumed_progress.step == straight_progress.step and resumed_progress.nan_rollbacks == 1
    assert learning_rates(resumed) == learning_rates(straight) == [0.15, 0.15]
    assert torch.equal(resumed.model.weight, straight.model.weight)


def test_the_retry_budget_spent_before_a_resume_stays_spent(tmp_path: Path) -> None:
    with pytest.raises(Killed):
        fit(rolling_back(tmp_path, FaultyTask(nan_at=(3,), kill_at=6), retries=1), FitProgress())
    resumed, progress = rolling_back(tmp_path, FaultyTask(nan_at=(2,)), retries=1), FitProgress()
    resume(resumed, progress, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(CvtrainError, match=r"after 1 rollbacks \(trainer.nan_retries=1\)"):
        fit(resumed, progress)
