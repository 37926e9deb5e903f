"""`cvtrain fit`: train, evaluating every `trainer.eval_every` epochs; keep checkpoints/best.ckpt and last.ckpt."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from cvtrain.composition import (
    Setup,
    build_setup,
    config_record,
    eval_loader,
    finish,
    group_choices,
    list_annotation_problems,
)
from cvtrain.config import Config, to_typed
from cvtrain.config.provenance import of_this_run
from cvtrain.config.training import TrainerConfig
from cvtrain.contracts.datasets import GroupsBatches
from cvtrain.contracts.monitor import monitor_mode
from cvtrain.engine import distributed, loaders
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoints.restore import group_schemas
from cvtrain.engine.checkpoints.training import resume
from cvtrain.engine.checkpoints.writing import remove_stale_temporaries
from cvtrain.engine.ema import ModelEMA
from cvtrain.engine.loop import fit
from cvtrain.engine.optim import build_optimizer, build_scheduler
from cvtrain.engine.plotting import RunPlots
from cvtrain.engine.recipe import global_batch, recipe_table
from cvtrain.engine.recorders.fanout import build_recorders, flatten
from cvtrain.engine.reporting import log, show
from cvtrain.engine.state import FitProgress, FitSetup
from cvtrain.errors import ConfigError, CvtrainError


def run_fit(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    cfg = to_typed(raw_cfg)
    show(recipe_table(cfg, of_this_run()))
    setup = build_setup(cfg, need_train=True)
    annotations_skipped = list_annotation_problems(setup.data, run_dir)
    d, train_ds = cfg.data, setup.data.train
    assert train_ds is not None
    run = build_run(cfg, setup, run_dir)
    monitor = run.monitor
    if cfg.trainer.plots and distributed.is_main():
        run.plots = RunPlots(run_dir, run.recorder, setup.outputs)
    if distributed.is_main():  # a killed write left its temporary behind; no other process writes here
        remove_stale_temporaries(run_dir / "checkpoints")
    resume_from = resume_path(cfg.trainer.resume, run_dir)
    progress = FitProgress()
    if resume_from is not None:
        resume(run, progress, resume_from)
    log.info(
        "fit %s on %s: %d train / %d val images, %d classes, %d steps/epoch, device %s%s",
        cfg.model.name,
        d.format,
        len(train_ds),
        len(setup.data.val),
        len(setup.data.class_names),
        math.ceil(len(run.train_loader) / run.accumulate),  # optimizer steps
        setup.device,
        f", autocast {setup.amp_dtype}" if setup.amp_dtype else "",
    )
    try:
        final = fit(run, progress)
        metrics = {k: v for k, v in final.items() if k not in ("epoch", "step")}
        run.recorder.hyperparameters(flatten(config_record(cfg)), metrics)
    finally:
        run.recorder.close()
    not_finite = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    results = {
        "status": "failed" if not_finite else "ok",
        **({"error": f"{not_finite[0]} is {metrics[not_finite[0]]}: the run diverged"} if not_finite else {}),
        **metrics,
        "monitor": monitor,
        "monitor_mode": run.monitor_mode,
        f"best_{monitor}": progress.best,
        "epochs": final.get("epoch", progress.start_epoch),
        "steps": progress.step,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "train_images": len(train_ds),
        "val_images": len(setup.data.val),
        "bad_images_skipped": run.bad_samples.count,
        "bad_annotations_skipped": annotations_skipped,
        "model": cfg.model.name,
        "data": d.format,
    }
    finish(run_dir, results, run.evaluator, title=f"{cfg.model.name} on {d.format}: final evaluation")
    if not_finite:
        raise CvtrainError(
            f"the final evaluation has {', '.join(f'{k}={metrics[k]}' for k in not_finite)}: the run diverged "
            "(lower optim.lr, set trainer.grad_clip, or use trainer.precision=32)."
        )
    return results


def build_run(cfg: Config, setup: Setup, run_dir: Path) -> FitSetup:
    """Everything fit trains with, from the config: the training loader, the model as it trains, optimizer,
    schedule, scaler, evaluation, reporting. `cvtrain bench` times these same objects."""
    d, t = cfg.data, cfg.trainer
    train_ds = setup.data.train
    assert train_ds is not None
    train_loader = loaders.train_loader(
        train_ds,
        collate=setup.task.collate,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        pin_memory=d.pin_memory,
        persistent_workers=d.persistent_workers,
        seed=t.seed,
        device=setup.device,
        batch_sampler_factory=train_ds.batch_sampler_factory if isinstance(train_ds, GroupsBatches) else None,
    )
    steps_per_epoch = math.ceil(len(train_loader) / t.accumulate)  # optimizer steps
    # The schedule spans the configured epochs; trainer.max_steps only stops the run early (a stopped run and
    # its resumption then follow the same schedule as an uninterrupted one).
    total_steps = t.epochs * steps_per_epoch
    model = wrap_model(setup, t)
    optimizer = build_optimizer(setup.model, cfg.optim, global_batch=global_batch(cfg))
    scheduler = build_scheduler(
        optimizer, cfg.sched, steps_per_epoch=steps_per_epoch, total_steps=total_steps
    )
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.amp_dtype == torch.float16)
    evaluator = setup.task.evaluator(setup.data.val)
    monitor = t.monitor or setup.task.monitor(setup.data.val)
    recorders = build_recorders(cfg.logger, run_dir)
    return FitSetup(
        model=model,
        task=setup.task,
        train_loader=train_loader,
        val_loader=eval_loader(setup, setup.data.val),
        evaluator=evaluator,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        device=setup.device,
        amp_dtype=setup.amp_dtype,
        run_dir=run_dir,
        epochs=t.epochs,
        max_steps=t.max_steps,
        eval_every=t.eval_every,
        grad_clip=t.grad_clip,
        on_nan=t.on_nan.value,
        nan_retries=t.nan_retries,
        log_every=t.log_every,
        monitor=monitor,
        monitor_mode=monitor_mode(monitor),
        recorder=recorders,
        bar=recorders.progress,
        bad_samples=BadSampleLog(d.on_bad_image.value, run_dir),
        ema=ModelEMA(setup.model, decay=t.ema_decay) if t.ema else None,
        checkpoint_every=t.checkpoint_every,
        accumulate=t.accumulate,
        channels_last=t.channels_last,
        checkpoint_extra={
            "config": config_record(cfg),
            "class_names": setup.data.class_names,
            "choices": group_choices(),
            "schemas": group_schemas(cfg),
            "mean_image": setup.mean_image,  # aug.mean_image=true: eval and predict need nothing else
        },
    )


def resume_path(resume: str | None, run_dir: Path) -> Path | None:
    """`trainer.resume`: a path, or auto (this run directory's last.ckpt when there is one, as a requeued job
    needs: give the job a fixed hydra.run.dir)."""
    if resume is None:
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            return last
        log.info("trainer.resume=auto: no %s yet, starting fresh", last)
        return None
    return Path(resume)


def wrap_model(setup: Setup, t: TrainerConfig) -> nn.Module:
    """The model as it trains: channels_last, SyncBatchNorm and DDP when several processes run, compiled."""
    model = setup.model
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    if distributed.world_size() > 1:
        if t.sync_bn and setup.device.type != "cuda":
            raise ConfigError(
                "trainer.sync_bn=true needs CUDA devices (PyTorch's SyncBatchNorm runs only on GPUs)"
            )
        if t.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            setup.model = model  # the optimizer, EMA and checkpoints see the converted module
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None
        )
    elif t.sync_bn:
        log.info("trainer.sync_bn=true has no effect in a single process")
    if t.compile:
        model = torch.compile(model)
    return model
