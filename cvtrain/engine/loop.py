"""The training loop: `fit` and `evaluate`, two plain functions.

The loop knows nothing of labels, boxes or masks: the task turns a batch into losses and predictions, the
evaluator turns predictions into metrics. What a run is built with (`FitSetup`) and how far it has come
(`FitProgress`) live in `state.py`; what a checkpoint holds, in `checkpoints/`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.monitor import improves
from cvtrain.contracts.outputs import PredictionSink
from cvtrain.contracts.task import Task
from cvtrain.engine import distributed
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoints.training import checkpoint_state, rng_state, set_rng_state
from cvtrain.engine.checkpoints.writing import save_checkpoint
from cvtrain.engine.meters import DataWait, LossMeter, rate_text
from cvtrain.engine.plotting import PreviewCollector
from cvtrain.engine.reporting import NO_PROGRESS, TrainProgress, log
from cvtrain.engine.rollback import LastGoodState
from cvtrain.engine.signals import EvaluationStopped, RunStopped, StopRequest
from cvtrain.engine.state import FitProgress, FitSetup, unwrap
from cvtrain.engine.step_faults import Diverged, out_of_memory_advice
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


def eval_model(run: FitSetup) -> nn.Module:
    return run.ema.module if run.ema is not None else unwrap(run.model)


def _forward_backward(run: FitSetup, batch: Batch, sync: bool) -> dict[str, torch.Tensor]:
    """Losses of one micro-batch, gradients accumulated (scaled by 1 / accumulate); DDP syncs only when `sync`."""
    no_sync = getattr(run.model, "no_sync", None)
    with contextlib.nullcontext() if sync or no_sync is None else no_sync():
        with autocast(run.device, run.amp_dtype):
            losses = run.task.training_step(run.model, batch)
        run.scaler.scale(losses["loss"] / run.accumulate).backward()
    return losses


def _optimizer_step(run: FitSetup, progress: FitProgress) -> None:
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update(unwrap(run.model))
    progress.step += 1


def train_step(
    run: FitSetup, progress: FitProgress, batch: Batch, step_now: bool = True
) -> dict[str, torch.Tensor]:
    """One micro-batch: to the device, forward, losses, backward, and the optimizer step when `step_now` (every
    `accumulate` batches). `cvtrain bench` times this same function."""
    with out_of_memory_advice(run.device, progress.step, len(batch)):
        losses = _forward_backward(run, to_device(run, batch), sync=step_now)
        if step_now:
            _optimizer_step(run, progress)
    return losses


def to_device(run: FitSetup, batch: Batch) -> Batch:
    batch = batch.to(run.device)
    if run.channels_last and isinstance(batch.images, torch.Tensor) and batch.images.ndim == 4:
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
    return batch


def fit(run: FitSetup, progress: FitProgress) -> dict[str, Any]:
    """Train from `progress` (fresh, or where a checkpoint left off; advanced as the run goes) for `run.epochs`
    (or until `run.max_steps`), evaluating and writing last.ckpt every `eval_every` epochs and at the end.
    Returns the metrics of the final evaluation (the weights in last.ckpt). A stop signal ends the run after the current step or evaluation
    batch with last.ckpt written (`RunStopped`)."""
    ckpt_dir = run.checkpoint_dir
    final: dict[str, Any] = {}
    epoch = progress.start_epoch
    run.model.train()
    run.optimizer.zero_grad(set_to_none=True)
    with StopRequest() as stop:
        # interrupted by a stop signal: evaluate again before training
        if progress.pending_evaluation is not None:
            position = (progress.start_epoch, progress.batches_done)
            final = _evaluate_or_stop(run, progress, progress.pending_evaluation, position, stop)
            progress.pending_evaluation = None
            if distributed.is_main():
                save_checkpoint(checkpoint_state(run, progress, *position), ckpt_dir / "last.ckpt")
        last_good = LastGoodState(keep=run.on_nan == "rollback")
        while epoch < run.epochs and not run.reached_max_steps(progress):
            skip, progress.batches_done = progress.batches_done, 0
            last_good.take(run, progress, epoch, skip)
            start_epoch(run, epoch, skip)
            try:
                trained = _train_epoch(run, progress, epoch, skip, stop)
            except Diverged as e:  # on_nan=rollback: go on from the epoch's start; on_nan=stop: raised again
                epoch, progress.batches_done = last_good.roll_back(run, progress, e)
                continue
            finished = trained >= len(run.train_loader)
            # where a resume continues: the next epoch, or this one after `trained` batches (max_steps)
            position = (epoch + 1, 0) if finished else (epoch, trained)
            epoch += 1
            # Evaluation, plots and last.ckpt come together every `eval_every` epochs and at the end: on small
            # data with many epochs, that cycle costs more than the epoch. Between them, `checkpoint_every` and a
            # stop signal still write last.ckpt.
            if epoch % run.eval_every == 0 or epoch >= run.epochs or run.reached_max_steps(progress):
                final = _evaluate_or_stop(run, progress, epoch, position, stop)
                if distributed.is_main():
                    save_checkpoint(checkpoint_state(run, progress, *position), ckpt_dir / "last.ckpt")
            if not finished:
                break
    run.bar.stop()
    return final


def start_epoch(run: FitSetup, epoch: int, skip: int = 0) -> None:
    """The training loader's next pass: epoch `epoch`'s order, without its first `skip` batches (trained on)."""
    run.train_loader.batch_sampler.set_epoch(epoch, skip=skip)
    run.train_loader.dataset.set_epoch(epoch, run.epochs)  # e.g. mosaic off for the last epochs


def _train_epoch(run: FitSetup, progress: FitProgress, epoch: int, skip: int, stop: StopRequest) -> int:
    """One epoch from batch `skip` on: an optimizer step every `accumulate` batches (and at the epoch's end).
    Returns how many of the epoch's batches are trained on (all of them unless `max_steps` stopped it)."""
    total, ckpt_dir = len(run.train_loader), run.checkpoint_dir
    run.bar.start_epoch(epoch, run.epochs, total, done=skip)
    meter = LossMeter()
    waits = DataWait(run.train_loader)
    lr_every = max(1, min(run.log_every, total // 50))  # >= 50 lr points an epoch: every step of a short one
    n = skip
    for n, batch in enumerate(waits, start=skip + 1):
        run.bad_samples.check(batch.bad)
        if len(batch) == 0:
            continue
        step_now = n % run.accumulate == 0 or n == total
        meter.add(train_step(run, progress, batch, step_now), len(batch))
        if step_now and progress.step % run.log_every == 0:
            _log_losses(run, progress.step, meter, epoch)
        elif step_now and progress.step % lr_every == 0:  # curves.png's lr: more points than the losses
            run.recorder.scalars("train", {"lr": run.optimizer.param_groups[0]["lr"]}, progress.step)
        run.bar.advance()
        if not step_now:
            continue
        stopping = stop.requested()
        if distributed.is_main() and n < total and (stopping or run.checkpoint_due(progress.step)):
            save_checkpoint(checkpoint_state(run, progress, epoch, batches_done=n), ckpt_dir / "last.ckpt")
        if stopping:
            run.bar.stop()
            where = f"at step {progress.step} (epoch {epoch + 1}, batch {n} of {total})"
            raise RunStopped(stop.name, where, ckpt_dir / "last.ckpt")
        if run.reached_max_steps(progress):
            break
    run.bar.end_epoch()
    if not meter.all_finite():  # also when the epoch ended between two log lines
        raise Diverged(progress.step, epoch, float("nan"))
    progress.data_wait_share = waits.share()
    run.recorder.scalars("train", {"data_wait_share": progress.data_wait_share}, progress.step)
    share, elapsed = 100 * progress.data_wait_share, waits.elapsed()
    log.info("epoch %d trained in %.1f s, %.0f%% of it waiting for data", epoch + 1, elapsed, share)
    return n if run.reached_max_steps(progress) else total


def _log_losses(run: FitSetup, step: int, meter: LossMeter, epoch: int) -> None:
    means, rate = meter.flush()
    if not math.isfinite(means["loss"]):
        raise Diverged(step, epoch, means["loss"])
    lr = run.optimizer.param_groups[0]["lr"]
    run.recorder.scalars("train", {**means, "lr": lr, "images_per_s": rate}, step)
    loss_text = " ".join(f"{k}={v:.4f}" for k, v in means.items())
    log.info("epoch %d step %d %s lr=%.3g %s", epoch + 1, step, loss_text, lr, rate_text(rate))


def _evaluate_or_stop(
    run: FitSetup, progress: FitProgress, epoch: int, position: tuple[int, int], stop: StopRequest
) -> dict[str, Any]:
    """Evaluate after `epoch`; a stop signal during the evaluation writes last.ckpt of the trained weights,
    marked so that the resumed run evaluates epoch `epoch` again first, and raises `RunStopped`."""
    before, ckpt_dir = rng_state(), run.checkpoint_dir
    try:
        return _evaluate_and_keep_best(run, progress, epoch, position, stop)
    except EvaluationStopped as e:
        set_rng_state(before)  # what the evaluation drew (a task sampling at inference) is drawn again
        if distributed.is_main():
            state = checkpoint_state(run, progress, *position, pending_evaluation=epoch)
            save_checkpoint(state, ckpt_dir / "last.ckpt")
        run.bar.stop()
        where = (
            f"at step {progress.step}, during the evaluation after epoch {epoch} (batch {e.batches_done} of "
            f"{e.total}), which the resumed run does again first"
        )
        raise RunStopped(e.signal_name, where, ckpt_dir / "last.ckpt") from None


def _evaluate_and_keep_best(
    run: FitSetup, progress: FitProgress, epoch: int, position: tuple[int, int], stop: StopRequest
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
        progress=run.bar,
        previews=collector,
        stop=stop,
    )
    if run.monitor not in metrics:
        raise CvtrainError(
            f"trainer.monitor={run.monitor!r} is not among the metrics this task computes: {sorted(metrics)}"
        )
    row = {"epoch": epoch, "step": progress.step, **metrics}
    progress.history.append(row)
    run.recorder.scalars("val", row, progress.step)
    log.info("epoch %d eval: %s", epoch, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if run.plots is not None:
        run.plots.write(evaluator, collector, progress.step)
    if improves(metrics[run.monitor], progress.best, run.monitor_mode):
        progress.best = metrics[run.monitor]
        if distributed.is_main():
            save_checkpoint(checkpoint_state(run, progress, *position), run.checkpoint_dir / "best.ckpt")
    return row
