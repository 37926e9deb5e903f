"""What a training run is built with (`FitSetup`) and how far it has come (`FitProgress`); a checkpoint of them
is `cvtrain/engine/checkpoints/training.py`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.monitor import MonitorMode
from cvtrain.contracts.recorder import Recorder
from cvtrain.contracts.task import Task
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.ema import ModelEMA
from cvtrain.engine.plotting import RunPlots
from cvtrain.engine.reporting import TrainProgress


@dataclass
class FitSetup:
    """What `fit` trains with, built once by `cvtrain/commands/fit.py` from the config."""

    model: nn.Module  # possibly DDP-wrapped
    task: Task
    train_loader: DataLoader
    val_loader: DataLoader
    evaluator: Evaluator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    run_dir: Path
    epochs: int
    max_steps: int | None
    eval_every: int
    grad_clip: float | None
    log_every: int
    monitor: str
    monitor_mode: MonitorMode
    recorder: Recorder
    bar: TrainProgress  # the console's progress bar
    bad_samples: BadSampleLog
    ema: ModelEMA | None = None
    checkpoint_every: int | None = None  # optimizer steps between mid-epoch last.ckpt writes
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    channels_last: bool = False
    on_nan: str = "stop"  # stop | rollback (cvtrain/engine/rollback.py)
    nan_retries: int = 3  # on_nan=rollback: rollbacks before a non-finite loss stops the run
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)  # config, class names
    plots: RunPlots | None = (
        None  # rank 0 with trainer.plots: the plots/ folder, refreshed at each evaluation
    )

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def checkpoint_due(self, step: int) -> bool:
        """A mid-epoch last.ckpt is due after optimizer step `step` (trainer.checkpoint_every)."""
        return self.checkpoint_every is not None and step % self.checkpoint_every == 0

    def reached_max_steps(self, progress: FitProgress) -> bool:
        return self.max_steps is not None and progress.step >= self.max_steps


@dataclass
class FitProgress:
    """How far a run has come: fresh, or read back from a checkpoint (`resume`); `fit` advances it."""

    start_epoch: int = 0
    step: int = 0
    batches_done: int = 0  # batches of epoch `start_epoch` already trained on (a mid-epoch resume)
    pending_evaluation: int | None = None  # the epoch whose evaluation a stop signal interrupted: done first
    best: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    nan_rollbacks: int = (
        0  # trainer.on_nan=rollback: rollbacks so far, each of which halved the learning rate
    )
    data_wait_share: float | None = None  # of the last epoch trained: time blocked on the loader / its time


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers (what checkpoints hold)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)
