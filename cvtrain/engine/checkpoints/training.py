"""What a training run puts in a checkpoint and takes back from one (resume): weights, optimizer, schedule
position, EMA, counters, the order of the data, and the state of every random number generator."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvtrain.engine import distributed
from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.weights import load_weights
from cvtrain.engine.reporting import log
from cvtrain.engine.state import FitProgress, FitSetup, unwrap
from cvtrain.errors import CvtrainError


def checkpoint_state(
    run: FitSetup,
    progress: FitProgress,
    epoch: int,
    batches_done: int = 0,
    pending_evaluation: int | None = None,
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
        "step": progress.step,
        "nan_rollbacks": progress.nan_rollbacks,
        "data_order": data_order(run),
        "best": progress.best,
        "monitor": run.monitor,
        "rng": rng_state(),
        **run.checkpoint_extra,
    }


def resume(run: FitSetup, progress: FitProgress, path: str | Path) -> None:
    """Continue `run` from the checkpoint at `path`: weights, optimizer, schedule position, EMA, RNG, and
    `progress` (counters, best)."""
    state = load_checkpoint(path)
    load_weights(
        unwrap(run.model),
        state["model"],
        path=path,
        state=state,
        model_config=(run.checkpoint_extra.get("config") or {}).get("model") or {},
    )
    _check_same_data_order(run, state, path)
    restore_training_state(run, progress, state)
    where = (
        f", {progress.batches_done} batches into epoch {progress.start_epoch + 1}"
        if progress.batches_done
        else ""
    )
    if progress.pending_evaluation is not None:
        where += f"; its evaluation after epoch {progress.pending_evaluation} was interrupted: evaluating again first"
    log.info("resumed from %s at epoch %d, step %d%s", path, progress.start_epoch, progress.step, where)


def restore_training_state(run: FitSetup, progress: FitProgress, state: dict[str, Any]) -> None:
    """Everything of `state` but the weights: optimizer, schedule position, scaler, EMA, counters, RNG."""
    run.optimizer.load_state_dict(state["optimizer"])
    # The schedule itself comes from the current config (epochs may have been extended); only its position
    # (and base_lrs, which trainer.on_nan=rollback halves) is restored (None: keep our own lr lambdas).
    run.scheduler.load_state_dict(
        {**state["scheduler"], "lr_lambdas": [None] * len(run.optimizer.param_groups)}
    )
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and state.get("ema"):
        run.ema.load_state_dict(state["ema"])
    progress.start_epoch, progress.step, progress.best = state["epoch"], state["step"], state["best"]
    progress.batches_done = state.get("batches_done", 0)
    progress.pending_evaluation = state.get("pending_evaluation")
    progress.nan_rollbacks = state.get("nan_rollbacks", 0)
    set_rng_state(state["rng"])


def data_order(run: FitSetup) -> dict[str, int]:
    """What fixes the order of an epoch's remaining batches: a mid-epoch resume must have the same."""
    return {
        "world_size": distributed.world_size(),
        "steps_per_epoch": len(run.train_loader),
        "accumulate": run.accumulate,
    }


def _check_same_data_order(run: FitSetup, state: dict[str, Any], path: str | Path) -> None:
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


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's (CUDA's too) generators, as tensors and plain values."""
    np_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what `rng_state` saved: the run draws on as if it had never stopped."""
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0)
    )
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
