"""`fit` and `evaluate` on their own: a linear model on a few tensors, no dataset format, model zoo or CLI."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cvtrain.contracts.batch import BadSample, Batch, split_bad
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.engine import loaders, loop
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.training import resume
from cvtrain.engine.checkpoints.writing import save_checkpoint
from cvtrain.engine.loop import evaluate, fit, start_epoch, train_step
from cvtrain.engine.meters import LossMeter
from cvtrain.engine.optim import build_optimizer, build_scheduler
from cvtrain.engine.recorders.csv_files import CsvRecorder
from cvtrain.engine.recorders.fanout import Recorders
from cvtrain.engine.reporting import TrainProgress
from cvtrain.engine.signals import RunStopped
from cvtrain.engine.state import FitProgress, FitSetup
from cvtrain.errors import CvtrainError, DataError
from tests.conftest import gpu_waits, needs_gpu

WEIGHTS = torch.tensor([[2.0], [-1.0]])


def regression_data(n: int = 64, seed: int = 0) -> TensorDataset:
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, x @ WEIGHTS)


class RegressionTask:
    name = "regression"

    def collate(self, samples: list[Any]) -> Batch:
        good, bad = split_bad(samples)
        x = torch.stack([s[0] for s in good]) if good else torch.empty(0, 2)
        y = torch.stack([s[1] for s in good]) if good else torch.empty(0, 1)
        return Batch(images=x, targets=y, meta=[{"index": i} for i in range(len(good))], bad=bad)

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(model(batch.images), batch.targets)}

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(batch.images)

    def evaluator(self, dataset: Any) -> Evaluator:
        return MSE()

    def monitor(self, dataset: Any) -> str:
        return "mse"


class MSE(Evaluator):
    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, batch: Batch, predictions: torch.Tensor) -> None:
        self.total += float(((predictions - batch.targets) ** 2).sum())
        self.count += batch.targets.numel()

    def merge(self, other: Evaluator) -> None:
        assert isinstance(other, MSE)
        self.total, self.count = self.total + other.total, self.count + other.count

    def compute(self) -> dict[str, float]:
        return {"mse": self.total / self.count}


class RecordingSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.written = 0

    def update(self, batch: Batch, predictions: torch.Tensor) -> None:
        self.records += [{"prediction": float(p)} for p in predictions.reshape(-1)]

    def write(self) -> None:
        self.written += 1


class Sched:
    name, warmup_epochs, warmup_factor, step_size, milestones, gamma, min_lr_ratio, power = (
        "constant", 0.0, 0.001, 30, [30], 0.1, 0.0, 0.9,
    )  # fmt: skip
    warmup_steps = None


class Optim:
    name, lr, weight_decay, decay_norm_and_bias, momentum, nesterov = "sgd", 0.3, 0.0, False, 0.0, False
    base_batch, scale_lr = None, True


def make_run(
    tmp_path: Path,
    *,
    epochs: int = 3,
    max_steps: int | None = None,
    batch_size: int = 8,
    accumulate: int = 1,
    device: str = "cpu",
    task: RegressionTask | None = None,
    eval_every: int = 1,
) -> FitSetup:
    tmp_path.mkdir(parents=True, exist_ok=True)  # the run directory Hydra makes
    torch.manual_seed(0)
    device = torch.device(device)
    model = nn.Linear(2, 1, bias=False).to(device)
    task = task or RegressionTask()
    common = dict(
        collate=task.collate, num_workers=0, pin_memory=True, persistent_workers=False, device=device
    )
    train = loaders.train_loader(regression_data(), batch_size=batch_size, seed=0, **common)
    optimizer = build_optimizer(model, Optim, global_batch=batch_size * accumulate)
    return FitSetup(
        model=model,
        task=task,
        train_loader=train,
        val_loader=loaders.eval_loader(regression_data(16, seed=1), batch_size=4, **common),
        evaluator=MSE(),
        optimizer=optimizer,
        scheduler=build_scheduler(
            optimizer, Sched, steps_per_epoch=len(train), total_steps=epochs * len(train)
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=False),
        device=device,
        amp_dtype=None,
        run_dir=tmp_path,
        epochs=epochs,
        max_steps=max_steps,
        eval_every=eval_every,
        grad_clip=None,
        log_every=4,
        monitor="mse",
        monitor_mode="min",
        recorder=Recorders([CsvRecorder(run_dir=tmp_path)]),
        bar=TrainProgress(False),
        bad_samples=BadSampleLog("error", tmp_path),
        accumulate=accumulate,
        checkpoint_extra={"config": {}, "class_names": []},  # what the CLI stores for `cvtrain eval`
    )


def test_fit_learns_and_keeps_last_and_best_checkpoints(tmp_path: Path) -> None:
    run, progress = make_run(tmp_path), FitProgress()
    final = fit(run, progress)
    assert final["mse"] < 1e-3 and progress.step == 3 * 8 and len(progress.history) == 3
    assert [row["epoch"] for row in progress.history] == [1, 2, 3]
    last = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert (
        last["epoch"] == 3 and last["step"] == 24 and torch.equal(last["model"]["weight"], run.model.weight)
    )
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file() and progress.best == pytest.approx(final["mse"])
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # one row per evaluation
    assert all(0.0 <= float(r["data_wait_share"]) <= 1.0 for r in rows)  # of the epoch before it
    assert "data_wait_share" not in final  # a figure of training, not of the evaluation


def test_evaluation_and_last_checkpoint_come_every_eval_every_epochs_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, int]] = []

    def save_and_count(state: dict, path: Path) -> None:
        written.append((Path(path).name, state["epoch"]))
        save_checkpoint(state, path)

    monkeypatch.setattr(loop, "save_checkpoint", save_and_count)
    run, progress = make_run(tmp_path, epochs=5, eval_every=2), FitProgress()
    fit(run, progress)
    assert [row["epoch"] for row in progress.history] == [2, 4, 5]
    assert [(name, epoch) for name, epoch in written if name == "last.ckpt"] == [
        ("last.ckpt", 2),
        ("last.ckpt", 4),
        ("last.ckpt", 5),
    ]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["step"] == 5 * 8


def test_a_run_stopped_by_max_steps_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight, straight_progress = make_run(tmp_path / "straight"), FitProgress()
    fit(straight, straight_progress)
    stopped = make_run(tmp_path / "stopped", max_steps=8)  # exactly one epoch
    fit(stopped, FitProgress())
    resumed = make_run(tmp_path / "stopped")
    resume_path = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    state = load_checkpoint(resume_path)
    assert state["epoch"] == 1 and state["step"] == 8
    resumed_progress = FitProgress()
    resume(resumed, resumed_progress, resume_path)
    fit(resumed, resumed_progress)
    assert resumed_progress.step == straight_progress.step
    assert torch.equal(resumed.model.weight, straight.model.weight)


class NoisyRegressionTask(RegressionTask):
    """Draws from the global RNG in training (input noise) and in evaluation (as MC dropout would); sends this
    process SIGTERM during its `signal_at`-th evaluation batch."""

    def __init__(self, signal_at: int | None = None):
        self.signal_at, self.evaluated = signal_at, 0

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        noisy = batch.images + 0.01 * torch.randn_like(batch.images)
        return {"loss": F.mse_loss(model(noisy), batch.targets)}

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        torch.rand(1)
        self.evaluated += 1
        if self.evaluated == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return model(batch.images)


def test_a_stop_signal_during_an_evaluation_checkpoints_the_trained_step_and_the_resume_evaluates_again(
    tmp_path: Path,
) -> None:
    straight, straight_progress = (
        make_run(tmp_path / "straight", epochs=2, task=NoisyRegressionTask()),
        FitProgress(),
    )
    fit(straight, straight_progress)
    stopped = make_run(tmp_path / "stopped", epochs=2, task=NoisyRegressionTask(signal_at=2))
    stopped_progress = FitProgress()
    where = r"at step 8, during the evaluation after epoch 1 \(batch 2 of 4\), which the resumed run does again first"
    with pytest.raises(RunStopped, match=f"stopped by SIGTERM {where}"):
        fit(stopped, stopped_progress)
    assert (
        stopped_progress.history == [] and not (tmp_path / "stopped" / "checkpoints" / "best.ckpt").exists()
    )
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    state = load_checkpoint(last)
    assert (state["epoch"], state["batches_done"], state["step"], state["pending_evaluation"]) == (1, 0, 8, 1)
    resumed = make_run(tmp_path / "stopped", epochs=2, task=NoisyRegressionTask())
    resumed_progress = FitProgress()
    resume(resumed, resumed_progress, last)
    assert resumed_progress.pending_evaluation == 1
    fit(resumed, resumed_progress)
    assert (
        resumed_progress.history == straight_progress.history
    )  # epoch 1 evaluated again, then epoch 2: the same metrics
    assert torch.equal(resumed.model.weight, straight.model.weight)  # and the same random draws in between
    assert load_checkpoint(last)["pending_evaluation"] is None


def test_evaluate_feeds_the_evaluator_and_finishes_every_sink(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    sink = RecordingSink()
    metrics, evaluator = evaluate(
        model=run.model,
        loader=run.val_loader,
        task=run.task,
        evaluator=MSE(),
        device=run.device,
        amp_dtype=None,
        bad_samples=run.bad_samples,
        sinks=[sink],
    )
    x, y = regression_data(16, seed=1).tensors
    with torch.no_grad():
        expected = float(((run.model(x) - y) ** 2).mean())
    assert metrics["mse"] == pytest.approx(expected) and isinstance(evaluator, MSE)
    assert len(sink.records) == 16 and sink.written == 1
    no_metrics, none = evaluate(
        model=run.model, loader=run.val_loader, task=run.task, evaluator=None, device=run.device,
        amp_dtype=None, bad_samples=run.bad_samples, sinks=[],
    )  # fmt: skip
    assert no_metrics == {} and none is None


def test_an_unreadable_sample_stops_the_loop_naming_the_file(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    loader = DataLoader(
        [BadSample(path="broken.jpg", reason="truncated")], batch_size=1, collate_fn=run.task.collate
    )
    with pytest.raises(DataError, match="broken.jpg"):
        evaluate(
            model=run.model, loader=loader, task=run.task, evaluator=MSE(), device=run.device, amp_dtype=None,
            bad_samples=run.bad_samples,
        )  # fmt: skip


def test_accumulating_two_half_batches_is_one_full_batch_step(tmp_path: Path) -> None:
    full, full_progress = make_run(tmp_path / "full", epochs=1), FitProgress()
    fit(full, full_progress)
    halves, halves_progress = (
        make_run(tmp_path / "halves", epochs=1, batch_size=4, accumulate=2),
        FitProgress(),
    )
    fit(halves, halves_progress)
    assert halves_progress.step == full_progress.step == 8  # optimizer steps, not micro-batches
    assert torch.allclose(halves.model.weight, full.model.weight, atol=1e-6)


def test_out_of_memory_names_the_batch_and_what_to_try(tmp_path: Path) -> None:
    run = make_run(tmp_path, epochs=1)

    def no_memory(model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    run.task.training_step = no_memory  # type: ignore[method-assign]
    with pytest.raises(
        CvtrainError, match=r"out of memory at step 1 with a batch of 8 images.*data.batch_size"
    ):
        fit(run, FitProgress())


@needs_gpu
def test_a_training_step_on_the_gpu_never_waits_for_it(tmp_path: Path) -> None:
    """So the host queues the next steps while the GPU runs this one: the transfer, forward, backward, optimizer
    and scheduler steps and the loss meter wait for nothing (the loss is read only every `log_every` steps)."""
    run, progress = make_run(tmp_path, device="cuda"), FitProgress()
    start_epoch(run, 0)
    batches, meter = iter(run.train_loader), LossMeter()
    meter.add(
        train_step(run, progress, next(batches)), 8
    )  # the first step: CUDA's lazy initialisation, outside the count
    batch = next(batches)
    assert batch.images.is_pinned()  # as `fit` loads them for a GPU: the copy can overlap the GPU's work
    with gpu_waits() as waits:
        meter.add(train_step(run, progress, batch), len(batch))
    assert waits == [] and progress.step == 2


def test_the_lr_of_every_step_of_a_short_epoch_is_recorded_the_losses_every_log_every(tmp_path: Path) -> None:
    run, progress = make_run(tmp_path), FitProgress()  # 8 steps an epoch, log_every=4
    fit(run, progress)
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    lr_steps = [int(r["step"]) for r in rows if r.get("lr")]
    loss_steps = [int(r["step"]) for r in rows if r.get("loss")]
    assert lr_steps == list(range(1, 25)) and loss_steps == list(range(4, 25, 4))
