"""The training loop: `fit` and `evaluate`, two plain functions.

The loop knows nothing of labels, boxes or masks: the task turns a batch into losses and predictions, the
evaluator turns predictions into metrics. `FitRun` and resuming live in `state.py`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.task import PredictionSink, Task
from cvtrain.engine import distributed
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoint import save_checkpoint
from cvtrain.engine.reporting import log
from cvtrain.engine.state import FitRun, checkpoint_state, unwrap
from cvtrain.errors import CvtrainError


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def evaluate(
    *,
    model: nn.Module,
    loader: DataLoader,
    task: Task,
    evaluator: Evaluator | None,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    bad_samples: BadSampleLog,
    sinks: Sequence[PredictionSink] = (),
) -> tuple[dict[str, float], Evaluator | None]:
    """Run the model over `loader`, feeding the evaluator and the prediction sinks (`cvtrain predict` has no
    evaluator). Returns the merged evaluator's metrics (the same on every rank; {} without one) and the merged
    evaluator; every sink then holds all ranks' records and rank 0 has written them."""
    was_training = model.training
    model.eval()
    distributed.broadcast_buffers(model)  # every shard is scored with the checkpointed model
    if evaluator is not None:
        evaluator.reset()
    for batch in loader:
        bad_samples.check(batch.bad)
        if len(batch) == 0:
            continue
        batch = batch.to(device)
        with autocast(device, amp_dtype):
            predictions = task.predict(model, batch)
        if evaluator is not None:
            evaluator.update(batch, predictions)
        for sink in sinks:
            sink.update(batch, predictions)
    model.train(was_training)
    distributed.finish_sinks(list(sinks))
    if evaluator is None:
        return {}, None
    evaluator = distributed.merge_evaluator(evaluator)
    return evaluator.compute(), evaluator


def eval_model(run: FitRun) -> nn.Module:
    return run.ema.module if run.ema is not None else unwrap(run.model)


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def _train_step(run: FitRun, batch: Batch) -> dict[str, torch.Tensor]:
    with autocast(run.device, run.amp_dtype):
        losses = run.task.training_step(run.model, batch)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(losses["loss"]).backward()
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update(unwrap(run.model))
    run.step += 1
    return losses


class _LossMeter:
    """Sums losses on the device and syncs only every `log_every` steps, so logging costs no GPU stall."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.images = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], images: int) -> None:
        for name, value in losses.items():
            v = value.detach().float()
            self.sums[name] = self.sums[name] + v if name in self.sums else v
        self.steps += 1
        self.images += images

    def flush(self) -> tuple[dict[str, float], float]:
        means = {k: distributed.all_reduce_mean(v / self.steps).item() for k, v in self.sums.items()}
        rate = self.images * distributed.world_size() / max(1e-9, time.perf_counter() - self.start)
        self.__init__()
        return means, rate


def fit(run: FitRun) -> dict[str, Any]:
    """Train for `run.epochs` (or until `run.max_steps`), evaluating every `eval_every` epochs and at the end.
    Returns the metrics of the final evaluation (the weights in last.ckpt)."""
    ckpt_dir = run.run_dir / "checkpoints"
    final: dict[str, Any] = {}
    epoch = run.start_epoch
    run.model.train()
    while epoch < run.epochs and not _done(run):
        run.train_loader.sampler_for_epoch.set_epoch(epoch)
        # e.g. MosaicDataset: mosaic off for the last aug.close_mosaic epochs
        dataset_set_epoch = getattr(run.train_loader.dataset, "set_epoch", None)
        if dataset_set_epoch is not None:
            dataset_set_epoch(epoch, run.epochs)
        run.progress.start_epoch(epoch, run.epochs, len(run.train_loader))
        meter = _LossMeter()
        for batch in run.train_loader:
            run.bad_samples.check(batch.bad)
            if len(batch) == 0:
                continue
            losses = _train_step(run, batch.to(run.device))
            meter.add(losses, len(batch))
            stats = None
            if run.step % run.log_every == 0:
                stats = _log_losses(run, meter, epoch)
            run.progress.advance(stats)
            if _done(run):
                break
        run.progress.end_epoch()
        epoch += 1
        last_epoch = epoch >= run.epochs or _done(run)
        if epoch % run.eval_every == 0 or last_epoch:
            final = _evaluate_and_keep_best(run, epoch, ckpt_dir)
        if distributed.is_main():
            save_checkpoint(checkpoint_state(run, epoch), ckpt_dir / "last.ckpt")
    run.progress.stop()
    return final


def _done(run: FitRun) -> bool:
    return run.max_steps is not None and run.step >= run.max_steps


def _log_losses(run: FitRun, meter: _LossMeter, epoch: int) -> str:
    means, rate = meter.flush()
    if not math.isfinite(means["loss"]):
        raise CvtrainError(
            f"the loss became {means['loss']} at step {run.step} (epoch {epoch + 1}). "
            "Lower optim.lr, set trainer.grad_clip, or use trainer.precision=32."
        )
    lr = run.optimizer.param_groups[0]["lr"]
    run.recorder.scalars("train", {**means, "lr": lr, "images_per_s": rate}, run.step)
    loss_text = " ".join(f"{k}={v:.4f}" for k, v in means.items())
    log.info("epoch %d step %d %s lr=%.3g %.0f img/s", epoch + 1, run.step, loss_text, lr, rate)
    return f"loss={means['loss']:.4f} lr={lr:.3g} {rate:.0f} img/s"


def _evaluate_and_keep_best(run: FitRun, epoch: int, ckpt_dir: Path) -> dict[str, Any]:
    metrics, _ = evaluate(
        model=eval_model(run),
        loader=run.val_loader,
        task=run.task,
        evaluator=run.evaluator,
        device=run.device,
        amp_dtype=run.amp_dtype,
        bad_samples=run.bad_samples,
    )
    if run.monitor not in metrics:
        raise CvtrainError(
            f"trainer.monitor={run.monitor!r} is not among the metrics this task computes: {sorted(metrics)}"
        )
    row = {"epoch": epoch, "step": run.step, **metrics}
    run.history.append(row)
    run.recorder.evaluation(row, run.step)
    log.info("epoch %d eval: %s", epoch, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if _is_better(metrics[run.monitor], run.best, run.monitor_mode):
        run.best = metrics[run.monitor]
        if distributed.is_main():
            save_checkpoint(checkpoint_state(run, epoch), ckpt_dir / "best.ckpt")
    return row
