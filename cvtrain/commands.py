"""The three subcommands, `fit`, `eval` and `predict`: build everything from the config and call the engine."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cvtrain.config import choice
from cvtrain.data.build import DataSplits, build_datasets, eval_transform
from cvtrain.data.inputs import InputImages
from cvtrain.engine import distributed, loaders
from cvtrain.engine.checkpoint import load_checkpoint, set_rng_state
from cvtrain.engine.ema import ModelEMA
from cvtrain.engine.loop import BadSampleLog, FitRun, evaluate, fit, unwrap
from cvtrain.engine.optim import build_optimizer, build_scheduler
from cvtrain.engine.reporting import MetricsRecorder, TrainProgress, log, metrics_table, show, write_json
from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model
from cvtrain.overrides import GROUPS
from cvtrain.tasks.base import Task
from cvtrain.tasks.build import build_task


@dataclass
class Setup:
    cfg: DictConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    data: DataSplits
    task: Task
    model: nn.Module


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `trainer.precision` (None: no autocast, fp32)."""
    if precision not in ("auto", "32", "bf16", "16"):
        raise ConfigError(f"trainer.precision={precision!r}: choose auto, 32, bf16 or 16.")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "16" and device.type == "cpu":
        raise ConfigError("trainer.precision=16 (fp16 autocast) needs CUDA; on the CPU use 32 or bf16.")
    return {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[precision]


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def build_setup(cfg: DictConfig, *, need_train: bool, class_names: list[str] | None = None) -> Setup:
    seed_everything(cfg.trainer.seed + distributed.rank(), cfg.trainer.deterministic)
    device = distributed.setup(cfg.trainer.device)
    data = build_datasets(cfg.data, cfg.aug, task=cfg.model.task, need_train=need_train)
    if class_names is not None and len(class_names) != len(data.class_names):
        raise ConfigError(
            f"the checkpoint was trained on {len(class_names)} classes but data={cfg.data.format} "
            f"has {len(data.class_names)}: evaluate on data with the same classes."
        )
    names = class_names or data.class_names
    task = build_task(cfg.model, class_names=names, predict_cfg=cfg.predict)
    model = build_model(cfg.model, num_classes=len(names)).to(device)
    return Setup(cfg, device, amp_dtype_for(choice(cfg.trainer.precision), device), data, task, model)


def _val_loader(setup: Setup, dataset: Any) -> Any:
    d = setup.cfg.data
    return loaders.eval_loader(
        dataset,
        collate=setup.task.collate,
        batch_size=d.eval_batch_size or d.batch_size,
        num_workers=d.num_workers,
        pin_memory=d.pin_memory,
        persistent_workers=False,
        device=setup.device,
    )


def config_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def group_choices() -> dict[str, str]:
    """Which option of each config group this run composed (stored so `eval ckpt=...` composes the same groups)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {g: str(choices[g]) for g in GROUPS if g in choices and choices[g] is not None}


def run_fit(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    setup = build_setup(cfg, need_train=True)
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
        batch_sampler_factory=getattr(train_ds, "batch_sampler_factory", None),
    )
    steps_per_epoch = len(train_loader)
    # The schedule spans the configured epochs; trainer.max_steps only stops the run early (a stopped run and
    # its resumption then follow the same schedule as an uninterrupted one).
    total_steps = t.epochs * steps_per_epoch
    model = setup.model
    if distributed.world_size() > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None
        )
    optimizer = build_optimizer(setup.model, cfg.optim)
    scheduler = build_scheduler(
        optimizer, cfg.sched, steps_per_epoch=steps_per_epoch, total_steps=total_steps
    )
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.amp_dtype == torch.float16)
    evaluator = setup.task.evaluator(setup.data.val)  # first: a detection task's headline follows the data
    monitor = t.monitor or setup.task.monitor
    run = FitRun(
        model=model,
        task=setup.task,
        train_loader=train_loader,
        val_loader=_val_loader(setup, setup.data.val),
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
        log_every=t.log_every,
        monitor=monitor,
        monitor_mode=setup.task.monitor_mode if t.monitor is None else _mode_of(monitor),
        recorder=MetricsRecorder(run_dir, cfg.logger.tensorboard),
        progress=TrainProgress(cfg.logger.progress),
        bad_samples=BadSampleLog(choice(d.on_bad_image), run_dir),
        ema=ModelEMA(setup.model, decay=t.ema_decay) if t.ema else None,
        checkpoint_extra={
            "config": config_container(cfg),
            "class_names": setup.data.class_names,
            "choices": group_choices(),
        },
    )
    if t.resume:
        _resume(run, t.resume)
    log.info(
        "fit %s on %s: %d train / %d val images, %d classes, %d steps/epoch, device %s%s",
        cfg.model.name,
        d.format,
        len(train_ds),
        len(setup.data.val),
        len(setup.data.class_names),
        steps_per_epoch,
        setup.device,
        f", autocast {setup.amp_dtype}" if setup.amp_dtype else "",
    )
    try:
        final = fit(run)
    finally:
        run.recorder.close()
    metrics = {k: v for k, v in final.items() if k not in ("epoch", "step")}
    results = {
        "status": "ok",
        **metrics,
        "monitor": monitor,
        f"best_{monitor}": run.best,
        "epochs": final.get("epoch", run.start_epoch),
        "steps": run.step,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "train_images": len(train_ds),
        "val_images": len(setup.data.val),
        "bad_images_skipped": run.bad_samples.count,
        "model": cfg.model.name,
        "data": d.format,
    }
    _finish(run_dir, results, run.evaluator, title=f"{cfg.model.name} on {d.format}: final evaluation")
    return results


def _mode_of(metric: str) -> str:
    return "min" if metric.endswith(("err", "loss")) or metric == "loss" else "max"


def _resume(run: FitRun, path: str) -> None:
    state = load_checkpoint(path)
    unwrap(run.model).load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    # The schedule itself comes from the current config (epochs may have been extended); only its position
    # is restored.
    position = {
        **state["scheduler"],
        "lr_lambdas": [None] * len(run.optimizer.param_groups),
    }  # None: keep ours
    run.scheduler.load_state_dict(position)
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and state.get("ema"):
        run.ema.load_state_dict(state["ema"])
    run.start_epoch, run.step, run.best = state["epoch"], state["step"], state["best"]
    set_rng_state(state["rng"])
    log.info("resumed from %s at epoch %d, step %d", path, run.start_epoch, run.step)


def _finish(run_dir: Path, results: dict[str, Any], evaluator: Any, title: str) -> None:
    write_json(run_dir / "results.json", results)
    show(metrics_table({k: v for k, v in results.items() if isinstance(v, float)}, title))
    if evaluator is not None:  # None when scoring a predictions file
        show(evaluator.report())
    log.info("results in %s", run_dir)


def checkpoint_config(cfg: DictConfig, overrides: list[str], ckpt: dict[str, Any]) -> DictConfig:
    """The checkpoint's config with the user's command-line overrides applied on top.

    A group override (`data=imagefolder`) replaces that whole group; a key override (`data.root=DIR`) replaces one
    value, taken from the composed config so it is already parsed and typed. Command keys come from the command line.
    """
    merged = OmegaConf.create(ckpt["config"])
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".")[0] in GROUPS:
            OmegaConf.update(merged, key, OmegaConf.select(cfg, key), merge=False)
    for key in ("command", "ckpt", "inputs", "predictions", "eval", "predict"):
        merged[key] = cfg[key]
    return merged


def run_eval(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    if cfg.ckpt is None:
        if cfg.predictions is not None:
            from cvtrain.tasks.scoring import score_predictions_file

            results = score_predictions_file(cfg)
            _finish(run_dir, results, None, title=f"{cfg.predictions} on {cfg.data.format}")
            return results
        raise ConfigError(
            "cvtrain eval needs ckpt=PATH (a checkpoint), or predictions=FILE to score saved predictions."
        )
    started = time.perf_counter()
    state = load_checkpoint(cfg.ckpt)
    cfg = checkpoint_config(cfg, overrides, state)
    setup = build_setup(cfg, need_train=False, class_names=list(state["class_names"]))
    _load_weights(setup.model, state)
    sinks = [setup.task.prediction_sink(setup.data.val, run_dir)] if cfg.eval.save_predictions else []
    metrics, evaluator = evaluate(
        model=setup.model,
        loader=_val_loader(setup, setup.data.val),
        task=setup.task,
        evaluator=setup.task.evaluator(setup.data.val),
        device=setup.device,
        amp_dtype=setup.amp_dtype,
        bad_samples=BadSampleLog(choice(cfg.data.on_bad_image), run_dir),
        sinks=sinks,
    )
    for sink in sinks:
        sink.close()
    write_json(run_dir / "config.json", config_container(cfg))
    results = {
        "status": "ok",
        **metrics,
        "ckpt": str(cfg.ckpt),
        "epoch": state["epoch"],
        "step": state["step"],
        "val_images": len(setup.data.val),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "model": cfg.model.name,
        "data": cfg.data.format,
    }
    _finish(run_dir, results, evaluator, title=f"eval {Path(cfg.ckpt).name}")
    return results


def _load_weights(model: nn.Module, state: dict[str, Any]) -> None:
    """The weights the run evaluated: the EMA average when training kept one, else the raw weights."""
    ema = state.get("ema")
    model.load_state_dict(ema["module"] if ema else state["model"])


def run_predict(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> list[dict[str, Any]]:
    if cfg.ckpt is None or cfg.inputs is None:
        raise ConfigError("cvtrain predict needs ckpt=PATH and inputs=IMAGE_OR_FOLDER.")
    state = load_checkpoint(cfg.ckpt)
    cfg = checkpoint_config(cfg, overrides, state)
    class_names = list(state["class_names"])
    seed_everything(cfg.trainer.seed, deterministic=False)
    device = distributed.setup(cfg.trainer.device)
    task = build_task(cfg.model, class_names=class_names, predict_cfg=cfg.predict)
    model = build_model(cfg.model, num_classes=len(class_names)).to(device)
    _load_weights(model, state)
    model.eval()
    images = InputImages(cfg.inputs, transform=eval_transform(cfg.model.task, cfg.aug))
    loader = loaders.eval_loader(
        images,
        collate=task.collate,
        batch_size=cfg.predict.batch_size,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        device=device,
    )
    sink = task.prediction_sink(images, run_dir)
    bad = BadSampleLog("skip", run_dir)
    amp = amp_dtype_for(choice(cfg.trainer.precision), device)
    with torch.inference_mode():
        for batch in loader:
            bad.check(batch.bad)
            if len(batch):
                batch = batch.to(device)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    sink.update(batch, task.predict(model, batch))
    records = sink.close()
    show(task.show_predictions(records, run_dir))
    log.info("%d predictions written to %s", len(records), run_dir)
    return records
