"""What a training run holds (`FitRun`), and how it becomes a checkpoint and comes back from one (resume)."""

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
from cvtrain.engine import distributed
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoint import load_checkpoint, rng_state, set_rng_state
from cvtrain.engine.ema import ModelEMA
from cvtrain.engine.plotting import RunPlots
from cvtrain.engine.reporting import TrainProgress, log
from cvtrain.errors import CvtrainError


@dataclass
class FitRun:
    """Everything `fit` needs, built by `cvtrain/commands/fit.py` from the config."""

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
    progress: TrainProgress
    bad_samples: BadSampleLog
    ema: ModelEMA | None = None
    checkpoint_every: int | None = None  # optimizer steps between mid-epoch last.ckpt writes
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    channels_last: bool = False
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)  # config, class names
    start_epoch: int = 0
    step: int = 0
    batches_done: int = 0  # batches of epoch `start_epoch` already trained on (a mid-epoch resume)
    pending_evaluation: int | None = None  # the epoch whose evaluation a stop signal interrupted: done first
    best: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    plots: RunPlots | None = (
        None  # rank 0 with trainer.plots: the plots/ folder, refreshed at each evaluation
    )
    data_wait_share: float | None = None  # of the last epoch trained: time blocked on the loader / its time


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers (what checkpoints hold)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)


def checkpoint_state(
    run: FitRun, epoch: int, batches_done: int = 0, pending_evaluation: int | None = None
) -> dict[str, Any]:
    """`epoch` epochs are complete, and `batches_done` batches of the next one (a mid-epoch checkpoint);
    `pending_evaluation`: the epoch whose evaluation was interrupted (a resume evaluates it again first)."""
    return {
        "model": unwrap(run.model).state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "epoch": epoch,
        "batches_done": batches_done,
        "pending_evaluation": pending_evaluation,
        "step": run.step,
        "data_order": data_order(run),
        "best": run.best,
        "monitor": run.monitor,
        "rng": rng_state(),
        **run.checkpoint_extra,
    }


def resume(run: FitRun, path: str | Path) -> None:
    """Continue `run` from the checkpoint at `path`: weights, optimizer, schedule position, EMA, counters, RNG."""
    state = load_checkpoint(path)
    load_weights(
        unwrap(run.model),
        state["model"],
        path=path,
        state=state,
        model_config=(run.checkpoint_extra.get("config") or {}).get("model") or {},
    )
    run.optimizer.load_state_dict(state["optimizer"])
    # The schedule itself comes from the current config (epochs may have been extended); only its position
    # is restored (None: keep our own lr lambdas).
    run.scheduler.load_state_dict(
        {**state["scheduler"], "lr_lambdas": [None] * len(run.optimizer.param_groups)}
    )
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and state.get("ema"):
        run.ema.load_state_dict(state["ema"])
    _check_same_data_order(run, state, path)
    run.start_epoch, run.step, run.best = state["epoch"], state["step"], state["best"]
    run.batches_done = state.get("batches_done", 0)
    run.pending_evaluation = state.get("pending_evaluation")
    set_rng_state(state["rng"])
    where = f", {run.batches_done} batches into epoch {run.start_epoch + 1}" if run.batches_done else ""
    if run.pending_evaluation is not None:
        where += (
            f"; its evaluation after epoch {run.pending_evaluation} was interrupted: evaluating again first"
        )
    log.info("resumed from %s at epoch %d, step %d%s", path, run.start_epoch, run.step, where)


def data_order(run: FitRun) -> dict[str, int]:
    """What fixes the order of an epoch's remaining batches: a mid-epoch resume must have the same."""
    return {
        "world_size": distributed.world_size(),
        "steps_per_epoch": len(run.train_loader),
        "accumulate": run.accumulate,
    }


def _check_same_data_order(run: FitRun, state: dict[str, Any], path: str | Path) -> None:
    saved = state.get("data_order")
    if not saved or not state.get("batches_done"):
        return  # an epoch boundary: any batch size or process count may continue from here
    now = data_order(run)
    if saved != now:
        raise CvtrainError(
            f"{path} was written mid-epoch by a run with {saved} (processes, batches per epoch, "
            f"trainer.accumulate) but this run has {now}: the remaining batches would differ. Resume with the "
            "same data.batch_size, trainer.accumulate and number of processes."
        )


def load_weights(
    model: nn.Module,
    weights: dict[str, Any],
    *,
    path: str | Path,
    state: dict[str, Any],
    model_config: dict[str, Any],
) -> None:
    """Load a checkpoint's weights into `model`, built from this run's `model_config` (plain values). Weights of
    another network are a `CvtrainError` naming the checkpoint, the model it was trained as, the settings of this
    run that differ from it, and the first tensor that differs."""
    expected = model.state_dict()
    difference = _first_difference(expected, weights)
    if difference is None:
        model.load_state_dict(weights)
        return
    saved = dict((state.get("config") or {}).get("model") or {})
    trained = f"model={saved.get('name', '?')}"
    changed = [k for k, v in model_config.items() if k in saved and saved[k] != v and k != "_target_"]
    if "name" in changed:
        arch = f" (model.arch={saved['arch']})" if "arch" in saved else ""
        raise CvtrainError(
            f"checkpoint {path} was trained as {trained}{arch}; the override model={model_config['name']} builds "
            f"a different network ({difference}). Drop the override or pass a checkpoint of "
            f"{model_config['name']}."
        )
    if changed:
        was = " ".join(f"model.{k}={saved[k]}" for k in changed)
        now = " ".join(f"model.{k}={model_config[k]}" for k in changed)
        raise CvtrainError(
            f"checkpoint {path} was trained as {trained} with {was}; the override {now} builds a different "
            f"network ({difference}). Drop the override or pass a checkpoint trained with it."
        )
    raise CvtrainError(
        f"the weights of checkpoint {path} do not fit the network {trained} builds here ({difference}): the "
        "checkpoint was written by a different version of the model's code, or edited; pass a checkpoint "
        "written by cvtrain fit with this model."
    )


def _first_difference(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str | None:
    """The first tensor a checkpoint's weights lack, add, or hold in another shape, and how many differ."""
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    reshaped = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if not (missing or extra or reshaped):
        return None
    if reshaped:
        k = reshaped[0]
        first = f"{k} is {list(given[k].shape)} in the checkpoint, {list(expected[k].shape)} in this network"
    elif missing:
        first = f"this network has {missing[0]}, which the checkpoint lacks"
    else:
        first = f"the checkpoint has {extra[0]}, which this network lacks"
    count = len(missing) + len(extra) + len(reshaped)
    return first + (f"; {count} tensors differ" if count > 1 else "")


def evaluated_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The weights a checkpointed run evaluated: the EMA average when training kept one, else the raw weights."""
    ema = state.get("ema")
    return ema["module"] if ema else state["model"]
