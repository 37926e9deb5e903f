"""The composition root: what every subcommand builds the same way from the config (seeds, device and precision,
datasets, task, model, loaders) and how it ends (results.json, the tables). A checkpoint's config, class names
and mean image come from `cvtrain/engine/checkpoints/restore.py`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cvtrain.config import CHECKPOINT_GROUPS, Config, to_plain
from cvtrain.contracts.outputs import PredictionOutputs
from cvtrain.contracts.task import Task
from cvtrain.data.annotations.checks import write_listing
from cvtrain.data.imagefolder.mean_image import training_mean_image
from cvtrain.data.splits import DataSplits, build_data
from cvtrain.engine import distributed, loaders
from cvtrain.engine.checkpoints.restore import NO_MEAN_IMAGE
from cvtrain.engine.reporting import log, metrics_table, show, write_json
from cvtrain.errors import ConfigError
from cvtrain.host_memory import keep_freed_memory
from cvtrain.models.build import build_model
from cvtrain.tasks.build import build_outputs, build_task


@dataclass
class Setup:
    cfg: Config
    device: torch.device
    amp_dtype: torch.dtype | None
    data: DataSplits
    task: Task
    outputs: PredictionOutputs  # the task's pictures, prediction files and tables
    model: nn.Module
    mean_image: torch.Tensor | None = None  # aug.mean_image=true: stored in checkpoints


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


def build_setup(
    cfg: Config,
    *,
    need_train: bool,
    class_names: list[str] | None = None,
    mean_image: torch.Tensor | None = None,
) -> Setup:
    """`class_names` and `mean_image` come from a checkpoint when evaluating one."""
    seed_everything(cfg.trainer.seed + distributed.rank(), cfg.trainer.deterministic)
    device = distributed.setup(cfg.trainer.device)
    keep_freed_memory(device)  # a CPU step then stops faulting its buffers in anew
    data = build_data(cfg.data, aug=cfg.aug, task=cfg.model.task, need_train=need_train)
    if class_names is not None and len(class_names) != len(data.class_names):
        raise ConfigError(
            f"the checkpoint was trained on {len(class_names)} classes but data={cfg.data.format} "
            f"has {len(data.class_names)}: evaluate on data with the same classes."
        )
    names = class_names or data.class_names
    if not cfg.aug.mean_image:
        mean_image = None
    elif mean_image is None and data.train is not None:
        mean_image = training_mean_image(data.train, cfg.aug, num_workers=cfg.data.num_workers)
    elif mean_image is None:
        raise ConfigError(NO_MEAN_IMAGE)
    task = task_of(cfg, names, mean_image)
    model = build_model(cfg.model, num_classes=len(names)).to(device)
    outputs = outputs_of(cfg, names)
    return Setup(
        cfg, device, amp_dtype_for(cfg.trainer.precision, device), data, task, outputs, model, mean_image
    )


def task_of(cfg: Config, class_names: list[str], mean_image: torch.Tensor | None) -> Task:
    """The task of `cfg.model`, with the model input its `aug` group (and mean image) describes."""
    return build_task(
        cfg.model,
        class_names=class_names,
        predict_cfg=cfg.predict,
        eval_cfg=cfg.eval,
        aug=cfg.aug,
        mean_image=mean_image,
    )


def outputs_of(cfg: Config, class_names: list[str]) -> PredictionOutputs:
    """What shows and writes the predictions of `cfg.model`'s task."""
    return build_outputs(cfg.model, class_names=class_names, predict_cfg=cfg.predict)


def list_annotation_problems(data: DataSplits, run_dir: Path) -> int:
    """Write what the annotation checks skipped or clipped to bad_annotations.txt; the number skipped."""
    if distributed.is_main():
        write_listing(data.problems, run_dir)
    return sum(1 for p in data.problems if p.action == "skipped")


def eval_loader(setup: Setup, dataset: Dataset, batch_size: int | None = None) -> DataLoader:
    d = setup.cfg.data
    return loaders.eval_loader(
        dataset,
        collate=setup.task.collate,
        batch_size=batch_size or d.eval_batch_size or d.batch_size,
        num_workers=d.num_workers,
        pin_memory=d.pin_memory,
        persistent_workers=False,
        device=setup.device,
    )


def group_choices() -> dict[str, str]:
    """Which option of each config group this run composed (stored so `eval ckpt=...` composes the same groups)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {g: str(choices[g]) for g in CHECKPOINT_GROUPS if g in choices and choices[g] is not None}


def finish(run_dir: Path, results: dict[str, Any], evaluator: Any, title: str) -> None:
    """results.json, the metrics table and the evaluator's own report (per-class tables)."""
    write_json(run_dir / "results.json", results)
    show(metrics_table({k: v for k, v in results.items() if isinstance(v, float)}, title))
    if evaluator is not None:  # None when scoring a predictions file
        show(evaluator.report())
    log.info("results in %s", run_dir)


def config_record(cfg: Config) -> dict[str, Any]:
    """The resolved config as plain values (checkpoints, config.json)."""
    return to_plain(cfg)
