"""The training loop: `fit` and `evaluate`, two plain functions.

The loop knows nothing of labels, boxes or masks: the task turns a batch into losses and predictions, the
evaluator turns predictions into metrics. `FitRun` and resuming live in `state.py`.
"""

from __future__ import annotations

import contextlib
import math
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
from cvtrain.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from cvtrain.engine.meters import DataWait, LossMeter
from cvtrain.engine.plotting import PreviewCollector
from cvtrain.engine.reporting import NO_PROGRESS, TrainProgress, log
from cvtrain.engine.signals import EvaluationStopped, RunStopped, StopRequest
from cvtrain.engine.state import FitRun, checkpoint_state, unwrap
from cvtrain.engine.step_faults import diverged, out_of_memory_advice
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
    progress: TrainProgress = NO_PROGRESS,
    previews: PreviewCollector | None = None,
    stop: StopRequest | None = None,
) -> tuple[dict[str, float], Evaluator | None]:
    """Run the model over `loader`, feeding the evaluator, prediction sinks (`cvtrain predict` has no evaluator)
    and `previews` (rank 0's first images), with a bar on `progress`. Returns the merged evaluator's metrics (the
    same on every rank; {} without one) and the merged evaluator; sinks hold all ranks' records, rank 0 wrote them.
    A signal recorded by `stop` ends it before the next batch with `EvaluationStopped` (nothing merged or written)."""
    was_training = model.training
    model.eval()
    distributed.broadcast_buffers(model)  # every shard is scored with the checkpointed model
    if evaluator is not None:
        evaluator.reset()
    progress.start_eval(len(loader))
    # Asking every rank is a collective: only on the batches every rank has (shards differ by at most one).
    checked = distributed.min_over_ranks(len(loader)) if stop is not None else 0
    for n, batch in enumerate(loader):
        if n < checked and stop is not None and stop.requested():
            raise EvaluationStopped(stop.name, n, len(loader))
        bad_samples.check(batch.bad)
        progress.advance()
        if len(batch) == 0:
            continue
        batch = batch.to(device)
        with autocast(device, amp_dtype):
            predictions = task.predict(model, batch)
        if evaluator is not None:
            evaluator.update(batch, predictions)
        for sink in sinks:
            sink.update(batch, predictions)
        if previews is not None:
            previews.add(batch, predictions)
    progress.end_eval()
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


def _forward_backward(run: FitRun, batch: Batch, sync: bool) -> dict[str, torch.Tensor]:
    """Losses of one micro-batch, gradients accumulated (scaled by 1 / accumulate); DDP syncs only when `sync`."""
    no_sync = getattr(run.model, "no_sync", None)
    with contextlib.nullcontext() if sync or no_sync is None else no_sync():
        with autocast(run.device, run.amp_dtype):
            losses = run.task.training_step(run.model, batch)
        run.scaler.scale(losses["loss"] / run.accumulate).backward()
    return losses


def _optimizer_step(run: FitRun) -> None:
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update(unwrap(run.model))
    run.step += 1


def train_step(run: FitRun, batch: Batch, step_now: bool = True) -> dict[str, torch.Tensor]:
    """One micro-batch: to the device, forward, losses, backward, and the optimizer step when `step_now` (every
    `accumulate` batches). `cvtrain bench` times this same function."""
    with out_of_memory_advice(run, len(batch)):
        losses = _forward_backward(run, to_device(run, batch), sync=step_now)
        if step_now:
            _optimizer_step(run)
    return losses


def to_device(run: FitRun, batch: Batch) -> Batch:
    batch = batch.to(run.device)
    if run.channels_last and isinstance(batch.images, torch.Tensor) and batch.images.ndim == 4:
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
    return batch


def fit(run: FitRun) -> dict[str, Any]:
    """Train for `run.epochs` (or until `run.max_steps`), evaluating every `eval_every` epochs and at the end.
    Returns the metrics of the final evaluation (the weights in last.ckpt). A stop signal ends the run after the
    current step or evaluation batch with last.ckpt written (`RunStopped`)."""
    ckpt_dir = run.run_dir / "checkpoints"
    final: dict[str, Any] = {}
    epoch = run.start_epoch
    run.model.train()
    run.optimizer.zero_grad(set_to_none=True)
    with StopRequest() as stop:
        if run.pending_evaluation is not None:  # interrupted by a stop signal: evaluate again before training
            position = (run.start_epoch, run.batches_done)
            final = _evaluate_or_stop(run, run.pending_evaluation, position, ckpt_dir, stop)
            run.pending_evaluation = None
            if distributed.is_main():
                save_checkpoint(checkpoint_state(run, *position), ckpt_dir / "last.ckpt")
        while epoch < run.epochs and not _done(run):
            skip, run.batches_done = run.batches_done, 0
            start_epoch(run, epoch, skip)
            trained = _train_epoch(run, epoch, skip, ckpt_dir, stop)
            finished = trained >= len(run.train_loader)
            # where a resume continues: the next epoch, or this one after `trained` batches (max_steps)
            position = (epoch + 1, 0) if finished else (epoch, trained)
            epoch += 1
            if epoch % run.eval_every == 0 or epoch >= run.epochs or _done(run):
                final = _evaluate_or_stop(run, epoch, position, ckpt_dir, stop)
            if distributed.is_main():
                save_checkpoint(checkpoint_state(run, *position), ckpt_dir / "last.ckpt")
            if not finished:
                break
    run.progress.stop()
    return final


def start_epoch(run: FitRun, epoch: int, skip: int = 0) -> None:
    """The training loader's next pass: epoch `epoch`'s order, without its first `skip` batches (trained on)."""
    run.train_loader.batch_sampler.set_epoch(epoch, skip=skip)
    run.train_loader.dataset.set_epoch(epoch, run.epochs)  # e.g. mosaic off for the last epochs


def _train_epoch(run: FitRun, epoch: int, skip: int, ckpt_dir: Path, stop: StopRequest) -> int:
    """One epoch from batch `skip` on: an optimizer step every `accumulate` batches (and at the epoch's end).
    Returns how many of the epoch's batches are trained on (all of them unless `max_steps` stopped it)."""
    total = len(run.train_loader)
    run.progress.start_epoch(epoch, run.epochs, total, done=skip)
    meter = LossMeter()
    waits = DataWait(run.train_loader)
    n = skip
    for n, batch in enumerate(waits, start=skip + 1):
        run.bad_samples.check(batch.bad)
        if len(batch) == 0:
            continue
        step_now = n % run.accumulate == 0 or n == total
        meter.add(train_step(run, batch, step_now), len(batch))
        if step_now and run.step % run.log_every == 0:
            _log_losses(run, meter, epoch)
        run.progress.advance()
        if not step_now:
            continue
        stopping = stop.requested()
        if distributed.is_main() and n < total and (stopping or _checkpoint_due(run)):
            save_checkpoint(checkpoint_state(run, epoch, batches_done=n), ckpt_dir / "last.ckpt")
        if stopping:
            run.progress.stop()
            where = f"at step {run.step} (epoch {epoch + 1}, batch {n} of {total})"
            raise RunStopped(stop.name, where, ckpt_dir / "last.ckpt")
        if _done(run):
            break
    run.progress.end_epoch()
    if not meter.all_finite():  # also when the epoch ended between two log lines
        raise diverged(run, epoch, float("nan"))
    run.data_wait_share = waits.share()
    run.recorder.scalars("train", {"data_wait_share": run.data_wait_share}, run.step)
    log.info(
        "epoch %d trained in %.1f s, %.0f%% of it waiting for data",
        epoch + 1,
        waits.elapsed(),
        100 * run.data_wait_share,
    )
    return n if _done(run) else total


def _checkpoint_due(run: FitRun) -> bool:
    return run.checkpoint_every is not None and run.step % run.checkpoint_every == 0


def _done(run: FitRun) -> bool:
    return run.max_steps is not None and run.step >= run.max_steps


def _log_losses(run: FitRun, meter: LossMeter, epoch: int) -> None:
    means, rate = meter.flush()
    if not math.isfinite(means["loss"]):
        raise diverged(run, epoch, means["loss"])
    lr = run.optimizer.param_groups[0]["lr"]
    run.recorder.scalars("train", {**means, "lr": lr, "images_per_s": rate}, run.step)
    loss_text = " ".join(f"{k}={v:.4f}" for k, v in means.items())
    log.info("epoch %d step %d %s lr=%.3g %.0f img/s", epoch + 1, run.step, loss_text, lr, rate)


def _evaluate_or_stop(
    run: FitRun, epoch: int, position: tuple[int, int], ckpt_dir: Path, stop: StopRequest
) -> dict[str, Any]:
    """Evaluate after `epoch`; a stop signal during the evaluation writes last.ckpt of the trained weights,
    marked so that the resumed run evaluates epoch `epoch` again first, and raises `RunStopped`."""
    before = rng_state()
    try:
        return _evaluate_and_keep_best(run, epoch, position, ckpt_dir, stop)
    except EvaluationStopped as e:
        set_rng_state(before)  # what the evaluation drew (a task sampling at inference) is drawn again
        if distributed.is_main():
            state = checkpoint_state(run, *position, pending_evaluation=epoch)
            save_checkpoint(state, ckpt_dir / "last.ckpt")
        run.progress.stop()
        where = (
            f"at step {run.step}, during the evaluation after epoch {epoch} (batch {e.batches_done} of "
            f"{e.total}), which the resumed run does again first"
        )
        raise RunStopped(e.signal_name, where, ckpt_dir / "last.ckpt") from None


def _evaluate_and_keep_best(
    run: FitRun, epoch: int, position: tuple[int, int], ckpt_dir: Path, stop: StopRequest
) -> dict[str, Any]:
    """Evaluate after `epoch` (1-based, the epoch just trained); best.ckpt resumes from `position`."""
    collector = run.plots.collector(len(run.val_loader)) if run.plots else None
    metrics, evaluator = evaluate(
        model=eval_model(run),
        loader=run.val_loader,
        task=run.task,
        evaluator=run.evaluator,
        device=run.device,
        amp_dtype=run.amp_dtype,
        bad_samples=run.bad_samples,
        progress=run.progress,
        previews=collector,
        stop=stop,
    )
    if run.monitor not in metrics:
        raise CvtrainError(
            f"trainer.monitor={run.monitor!r} is not among the metrics this task computes: {sorted(metrics)}"
        )
    row = {"epoch": epoch, "step": run.step, **metrics}
    run.history.append(row)
    run.recorder.scalars("val", row, run.step)
    log.info("epoch %d eval: %s", epoch, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if run.plots is not None:
        run.plots.write(evaluator, collector, run.step)
    if _is_better(metrics[run.monitor], run.best, run.monitor_mode):
        run.best = metrics[run.monitor]
        if distributed.is_main():
            save_checkpoint(checkpoint_state(run, *position), ckpt_dir / "best.ckpt")
    return row
