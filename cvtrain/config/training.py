"""Schemas of the optimisation groups (`optim`, `sched`), the `aug` presets, and `trainer` / `logger`."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from cvtrain.config.registry import schema


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 0.1
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = False  # the usual recipe: no weight decay on norm weights and biases


@schema("optim", "sgd")
@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False


@schema("optim", "adamw")
@dataclass
class AdamWConfig(OptimConfig):
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@schema("sched", "sched")
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


@schema("aug", "aug")
@dataclass
class AugConfig:
    name: str = MISSING  # imagenet | alexnet | none | ... (presets of the same fields)
    image_size: int = "${data.image_size}"  # type: ignore[assignment]  # the crop the network sees
    resize_size: int | None = None  # eval resize before the centre crop; None = image_size / 0.875
    random_resized_crop: bool = True
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    hflip: float = 0.5
    scale_range: list[float] | None = None  # random scale of the image content, e.g. [0.75, 1.25]; None = off
    photometric: bool = False  # detection: random brightness / contrast / saturation / hue / channel order
    # aug=yolo (cvtrain/data/yolo_transforms.py, cvtrain/data/mosaic.py); the defaults leave them off.
    hsv: list[float] | None = None  # [hue, saturation, value] jitter gains, e.g. [0.015, 0.7, 0.4]
    translate: float = 0.0  # random affine shift, a fraction of the image
    vflip: float = 0.0
    mosaic: float = 0.0  # probability of a 4-image mosaic per training sample
    close_mosaic: int = 0  # no mosaic in the last this-many epochs
    # Classification training, on the batch (cvtrain/tasks/mixing.py): Beta(alpha, alpha) of MixUp / CutMix, 0 = off;
    # with both on, each batch takes one of them at random. Soft targets; evaluation is untouched.
    mixup: float = 0.0
    cutmix: float = 0.0
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # Classification: subtract the training set's per-pixel mean image (at image_size, computed once and cached
    # beside the data, stored in checkpoints) instead of the per-channel mean; std still divides.
    mean_image: bool = False
    lighting: float = 0.0  # AlexNet's PCA colour noise in training: std of the eigenvalue weights, e.g. 0.1


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    epochs: int = 5
    max_steps: int | None = None  # stop after this many optimizer steps
    # auto: bf16 (fp16 where bf16 is unsupported) autocast on CUDA, fp32 on the CPU; or 32 | bf16 | 16.
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    grad_clip: float | None = None  # max gradient norm
    log_every: int = 20  # steps between loss/lr/throughput logs
    monitor: str | None = None  # metric that picks best.ckpt; None = the task's headline metric
    # A checkpoint to continue from, or auto: <run dir>/checkpoints/last.ckpt when it exists (a requeued job).
    resume: str | None = None
    checkpoint_every: int | None = None  # also write last.ckpt every this many optimizer steps (mid-epoch)
    accumulate: int = 1  # gradient accumulation: micro-batches per optimizer step (DDP syncs on the last)
    sync_bn: bool = False  # SyncBatchNorm under DDP: batch statistics over every process's batch
    channels_last: bool = (
        False  # NHWC memory format for the model and 4-D image batches (faster convs on GPU)
    )
    compile: bool = False  # torch.compile the model
    ema: bool = False  # evaluate an exponential moving average of the weights
    ema_decay: float = 0.9999
    deterministic: bool = False


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    progress: bool = True  # rich progress bar (only on a terminal)
    plots: bool = (
        True  # fit: plots/ in the run directory (and TensorBoard images), refreshed at each evaluation
    )
