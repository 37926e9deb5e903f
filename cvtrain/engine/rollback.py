"""`trainer.on_nan=rollback`: a run whose training loss stops being finite goes back to its last good state with
half the learning rate and goes on, at most `trainer.nan_retries` times; then it stops as `on_nan=stop` does.

The last good state is an in-memory copy of what a checkpoint holds (weights, optimizer, schedule position,
gradient scaler, EMA, counters, every random generator), taken on the host at the start of each epoch (and of a
resumed run's first, partial epoch). The epoch is the cadence because its end is where the loss is known to be
finite on every rank, with no device sync of its own; a copy costs about one checkpoint's worth of host memory
and no disk. A rollback trains the epoch again from its start, on the same batches in the same order.

The halved rate lives in the optimizer's and the schedule's state (each group's lr and initial_lr, the
schedule's base_lrs), so every later checkpoint carries it, and the count of rollbacks is in the checkpoint too.
last.ckpt is written again right after a rollback, so a run stopped after it resumes with the halved rate, as the
uninterrupted run went on.
"""

from __future__ import annotations

from typing import Any

import torch

from cvtrain.engine import distributed
from cvtrain.engine.checkpoints.training import checkpoint_state, restore_training_state
from cvtrain.engine.checkpoints.writing import save_checkpoint
from cvtrain.engine.reporting import log
from cvtrain.engine.state import FitProgress, FitSetup, unwrap
from cvtrain.engine.step_faults import ADVICE, Diverged
from cvtrain.errors import CvtrainError


class LastGoodState:
    """The run's state at the start of its current epoch, and the way back to it; with `keep` false
    (trainer.on_nan=stop) it keeps nothing and a divergence ends the run."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.state: dict[str, Any] | None = None

    def take(self, run: FitSetup, progress: FitProgress, epoch: int, batches_done: int) -> None:
        if self.keep:
            self.state = _host_copy(checkpoint_state(run, progress, epoch, batches_done))

    def roll_back(self, run: FitSetup, progress: FitProgress, diverged: Diverged) -> tuple[int, int]:
        """Restore the state taken last and halve the learning rate; returns where training resumes (epoch,
        batches done). Raises `diverged` when nothing is kept, and a `CvtrainError` once `run.nan_retries`
        rollbacks are spent."""
        if self.state is None:
            raise diverged
        if progress.nan_rollbacks >= run.nan_retries:
            raise CvtrainError(
                f"the loss became {diverged.value} at step {diverged.step} (epoch {diverged.epoch + 1}) after "
                f"{progress.nan_rollbacks} rollbacks (trainer.nan_retries={run.nan_retries}), each halving the "
                f"learning rate (optim.lr is now {run.scheduler.base_lrs[0]:.3g}). {ADVICE}."
            ) from None
        unwrap(run.model).load_state_dict(self.state["model"])
        rollbacks = progress.nan_rollbacks + 1
        restore_training_state(run, progress, self.state)
        progress.nan_rollbacks = rollbacks
        before = run.scheduler.base_lrs[0]
        halve_learning_rate(run.optimizer, run.scheduler)
        epoch, batches_done = self.state["epoch"], self.state["batches_done"]
        where = f"epoch {epoch + 1}" + (f", batch {batches_done}" if batches_done else "")
        log.warning(
            "the loss became %s at step %d (epoch %d): rolled back to step %d (%s) and halved optim.lr "
            "%.3g -> %.3g (rollback %d of trainer.nan_retries=%d)",
            diverged.value, diverged.step, diverged.epoch + 1, progress.step, where, before,
            run.scheduler.base_lrs[0], rollbacks, run.nan_retries,
        )  # fmt: skip
        if distributed.is_main():  # a resume from here continues as this run does
            save_checkpoint(
                checkpoint_state(run, progress, epoch, batches_done), run.checkpoint_dir / "last.ckpt"
            )
        return epoch, batches_done


def halve_learning_rate(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> None:
    """Half the rate of every parameter group from this step on: the schedule's factors apply to the halved base."""
    for group in optimizer.param_groups:
        group["lr"] /= 2
        if "initial_lr" in group:
            group["initial_lr"] /= 2
    scheduler.base_lrs = [lr / 2 for lr in scheduler.base_lrs]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports


def _host_copy(value: Any) -> Any:
    """`value` with every tensor copied to the host: the live ones go on changing as the run trains."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _host_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_host_copy(v) for v in value)
    return value
