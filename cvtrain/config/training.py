"""Schemas of the optimisation groups (`optim`, `sched`), the `aug` presets, and `trainer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING

from cvtrain.config.ranges import bounded
from cvtrain.config.registry import schema


@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = bounded(0.1, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    decay_norm_and_bias: bool = False  # the usual recipe: no weight decay on norm weights and biases
    # The global batch `lr` is quoted for (a recipe's); None: lr is the run's rate whatever its batch.
    base_batch: int | None = bounded(None, ge=1)
    # With base_batch: the run's lr = lr x global batch / base_batch (global = batch x accumulate x processes).
    scale_lr: bool = True


@schema("optim", "sgd")
@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    momentum: float = bounded(0.9, ge=0, lt=1)
    nesterov: bool = False


@schema("optim", "adamw")
@dataclass
class AdamWConfig(OptimConfig):
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = bounded(factory=lambda: [0.9, 0.999], ge=0, lt=1)
    eps: float = bounded(1e-8, gt=0)


@schema("sched", "sched")
@dataclass
class SchedConfig:
    name: str = MISSING  # step | multistep | cosine | poly | constant
    warmup_epochs: float = bounded(0.0, ge=0)  # linear warmup from warmup_factor x lr
    warmup_factor: float = bounded(0.001, gt=0, le=1)
    # warm-up counted in optimizer steps instead (torchvision detection: 1000), capped as torchvision caps it at
    # one step short of the first epoch; None: warmup_epochs
    warmup_steps: int | None = bounded(None, ge=1)
    step_size: int = bounded(30, ge=1)  # step: decay every step_size epochs
    milestones: list[int] = bounded(factory=lambda: [30, 60, 90], ge=1)  # multistep, in epochs
    gamma: float = bounded(0.1, gt=0)
    min_lr_ratio: float = bounded(0.0, ge=0, le=1)  # cosine and poly floor, as a fraction of lr
    power: float = bounded(0.9, ge=0)  # poly


@schema("aug", "aug")
@dataclass
class AugConfig:
    name: str = MISSING  # imagenet | alexnet | none | ... (presets of the same fields)
    image_size: int = bounded("${data.image_size}", ge=1)  # type: ignore[assignment]  # the crop the network sees
    # eval resize before the centre crop; None = image_size / 0.875
    resize_size: int | None = bounded(None, ge=1)
    random_resized_crop: bool = True
    crop_scale: list[float] = bounded(factory=lambda: [0.08, 1.0], gt=0, le=1)
    hflip: float = bounded(0.5, ge=0, le=1)
    # random scale of the image content, e.g. [0.75, 1.25]; None = off
    scale_range: list[float] | None = bounded(None, gt=0)
    photometric: bool = False  # detection: random brightness / contrast / saturation / hue / channel order
    # Detection: true takes YOLO's pipeline (cvtrain/data/transforms/yolo.py): every image letterboxed to image_size
    # in training and evaluation, with the steps below; false: no resize (the torchvision detectors resize inside).
    letterbox: bool = False
    # aug=yolo (cvtrain/data/transforms/yolo.py, cvtrain/data/transforms/mosaic.py); the defaults leave them off.
    # [hue, saturation, value] jitter gains, e.g. [0.015, 0.7, 0.4]
    hsv: list[float] | None = bounded(None, ge=0)
    translate: float = bounded(0.0, ge=0, le=1)  # random affine shift, a fraction of the image
    vflip: float = bounded(0.0, ge=0, le=1)
    mosaic: float = bounded(0.0, ge=0, le=1)  # probability of a 4-image mosaic per training sample
    close_mosaic: int = bounded(0, ge=0)  # no mosaic in the last this-many epochs
    # Classification training, on the batch (cvtrain/tasks/mixing.py): Beta(alpha, alpha) of MixUp / CutMix, 0 = off;
    # with both on, each batch takes one of them at random. Soft targets; evaluation is untouched.
    mixup: float = bounded(0.0, ge=0)
    cutmix: float = bounded(0.0, ge=0)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = bounded(factory=lambda: [0.229, 0.224, 0.225], gt=0)
    # Classification: subtract the training set's per-pixel mean image (at image_size, computed once and cached
    # beside the data, stored in checkpoints) instead of the per-channel mean; std still divides.
    mean_image: bool = False
    # AlexNet's PCA colour noise in training: std of the eigenvalue weights, e.g. 0.1
    lighting: float = bounded(0.0, ge=0)


class OnNan(StrEnum):
    stop = "stop"  # end the run with advice
    rollback = "rollback"  # back to the last good state (each epoch's start), halve the lr, go on


@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    epochs: int = bounded(5, ge=1, hint="To evaluate a checkpoint without training: cvtrain eval ckpt=PATH.")
    max_steps: int | None = bounded(None, ge=1)  # stop after this many optimizer steps
    # auto: bf16 (fp16 where bf16 is unsupported) autocast on CUDA, fp32 on the CPU; or 32 | bf16 | 16.
    precision: str = "auto"
    seed: int = bounded(0, ge=0)
    eval_every: int = bounded(1, ge=1)  # epochs between evaluations (the last epoch is always evaluated)
    grad_clip: float | None = bounded(None, gt=0)  # max gradient norm
    on_nan: OnNan = OnNan.stop  # what a non-finite training loss does (cvtrain/engine/rollback.py)
    nan_retries: int = bounded(3, ge=0)  # on_nan=rollback: rollbacks before the run stops as with on_nan=stop
    log_every: int = bounded(20, ge=1)  # steps between loss/lr/throughput logs
    monitor: str | None = None  # metric that picks best.ckpt; None = the task's headline metric
    # A checkpoint to continue from, or auto: <run dir>/checkpoints/last.ckpt when it exists (a requeued job).
    resume: str | None = None
    # also write last.ckpt every this many optimizer steps (mid-epoch)
    checkpoint_every: int | None = bounded(None, ge=1)
    # gradient accumulation: micro-batches per optimizer step (DDP syncs on the last)
    accumulate: int = bounded(1, ge=1)
    sync_bn: bool = False  # SyncBatchNorm under DDP: batch statistics over every process's batch
    channels_last: bool = (
        False  # NHWC memory format for the model and 4-D image batches (faster convs on GPU)
    )
    compile: bool = False  # torch.compile the model
    ema: bool = False  # evaluate an exponential moving average of the weights
    ema_decay: float = bounded(0.9999, ge=0, lt=1)
    deterministic: bool = False
    # fit: plots/ in the run directory (and TensorBoard images), refreshed at each evaluation
    plots: bool = True
