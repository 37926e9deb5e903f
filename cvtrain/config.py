"""Typed schemas for every config group, stored in Hydra's ConfigStore.

Each YAML option in `conf/<group>/` starts its defaults list with `/schema/<group>/<schema>@_here_`, so a
misspelled key or a value of the wrong type fails during composition, before any work starts. Group-specific
schemas (one per family of options) live next to the shared ones here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class OnBadImage(Enum):
    error = "error"  # stop the run, naming the file
    skip = "skip"  # skip it, count it, list it in bad_images.txt in the run directory


class Precision(Enum):
    auto = "auto"  # bf16 (or fp16 where bf16 is unsupported) autocast on CUDA, fp32 on CPU
    fp32 = "32"
    bf16 = "bf16"
    fp16 = "16"


# ---------------------------------------------------------------- data
@dataclass
class DataConfig:
    format: str = MISSING
    batch_size: int = 32  # per process: a DDP run's global batch is batch_size x world size
    eval_batch_size: int | None = None  # defaults to batch_size
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    on_bad_image: OnBadImage = OnBadImage.error
    image_size: int = 224  # the size the data is meant to be seen at; aug.image_size follows it by default


@dataclass
class ImageFolderDataConfig(DataConfig):
    format: str = "imagefolder"
    root: str = MISSING
    train_dir: str = "train"
    val_dir: str = "val"
    synset_mapping: str | None = None  # a file of "<folder> <human readable name>" lines, relative to root


@dataclass
class ShapesDataConfig(DataConfig):
    format: str = "shapes"
    cache_dir: str = "~/.cache/cvtrain/shapes"
    seed: int = 0
    image_size: int = 64
    train_per_class: int = 160  # classification form
    val_per_class: int = 40


@dataclass
class SyntheticDataConfig(DataConfig):
    format: str = "synthetic"
    num_classes: int = 10
    length: int = 512
    num_workers: int = 0  # tensors are already in memory


# ---------------------------------------------------------------- model
@dataclass
class ModelConfig:
    name: str = MISSING
    task: str = MISSING  # classification | detection | segmentation: selects the task and the data form
    pretrained: bool = False


@dataclass
class ClassifierConfig(ModelConfig):
    task: str = "classification"
    arch: str = MISSING  # a torchvision classification builder name
    freeze: str | None = None  # freeze every stage up to and including this one (transfer learning)
    dropout: float | None = None  # None keeps the architecture's default; only for models with dropout


# ---------------------------------------------------------------- optim / sched
@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 0.1
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = False  # the usual recipe: no weight decay on norm weights and biases


@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class AdamWConfig(OptimConfig):
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SchedConfig:
    name: str = MISSING  # step | multistep | cosine | poly | constant
    warmup_epochs: float = 0.0  # linear warmup from warmup_factor x lr
    warmup_factor: float = 0.001
    step_size: int = 30  # step: decay every step_size epochs
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])  # multistep, in epochs
    gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    power: float = 0.9  # poly


# ---------------------------------------------------------------- aug
@dataclass
class AugConfig:
    name: str = MISSING  # imagenet | alexnet | none (presets of the same fields)
    image_size: int = "${data.image_size}"  # type: ignore[assignment]  # the crop the network sees
    resize_size: int | None = None  # eval resize before the centre crop; None = image_size / 0.875
    random_resized_crop: bool = True
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    hflip: float = 0.5
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


# ---------------------------------------------------------------- trainer / logger
@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimizer steps
    precision: Precision = Precision.auto
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    grad_clip: float | None = None  # max gradient norm
    log_every: int = 20  # steps between loss/lr/throughput logs
    monitor: str | None = None  # metric that picks best.ckpt; None = the task's headline metric
    resume: str | None = None  # a checkpoint to continue from
    ema: bool = False  # evaluate an exponential moving average of the weights
    ema_decay: float = 0.9999
    deterministic: bool = False


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    progress: bool = True  # rich progress bar (only on a terminal)


# ---------------------------------------------------------------- top level
@dataclass
class EvalConfig:
    save_predictions: bool = False


@dataclass
class PredictConfig:
    topk: int = 5
    score_threshold: float = 0.5
    batch_size: int = 8


@dataclass
class Config:
    command: str = "fit"  # set by the CLI: fit | eval | predict
    ckpt: str | None = None  # eval / predict: the checkpoint to load
    inputs: str | None = None  # predict: an image file or a folder of images
    predictions: str | None = None  # eval: score a saved predictions file instead of running a model
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    data: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    sched: Any = MISSING
    aug: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {
        "imagefolder": ImageFolderDataConfig,
        "shapes": ShapesDataConfig,
        "synthetic": SyntheticDataConfig,
    },
    "model": {"classifier": ClassifierConfig},
    "optim": {"sgd": SGDConfig, "adamw": AdamWConfig},
    "sched": {"sched": SchedConfig},
    "aug": {"aug": AugConfig},
}


def register_schemas() -> None:
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def choice(value: Any) -> str:
    """The string of an enum-typed option, whether the config is typed (Enum) or loaded from a checkpoint (str)."""
    return value.value if isinstance(value, Enum) else str(value)
