"""Optimizers and learning-rate schedules, built from the `optim` and `sched` groups.

Schedules are computed per optimizer step (epochs in the config are converted with steps_per_epoch), so warmup and
decay are smooth and `trainer.max_steps` shortens them consistently.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from cvtrain.errors import ConfigError


def parameter_groups(
    model: nn.Module, weight_decay: float, decay_norm_and_bias: bool
) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and norm weights / biases (every tensor with ndim <= 1) that do not."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 and not decay_norm_and_bias else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def run_lr(cfg: Any, global_batch: int) -> float:
    """The rate the run trains at: `optim.lr` is quoted for `optim.base_batch` images, so the linear rule scales it
    to the run's global batch (Goyal et al., 2017); as it is without a base batch or with `optim.scale_lr=false`."""
    if cfg.base_batch is None or not cfg.scale_lr:
        return float(cfg.lr)
    return float(cfg.lr) * global_batch / cfg.base_batch


def build_optimizer(model: nn.Module, cfg: Any, *, global_batch: int) -> torch.optim.Optimizer:
    """The `optim` group's optimizer at `run_lr(cfg, global_batch)`."""
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    if not any(g["params"] for g in groups):
        raise ConfigError("no trainable parameters: model.freeze froze the whole network.")
    lr = run_lr(cfg, global_batch)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps)
    raise ConfigError(f"optim.name={cfg.name!r} is not known; choose sgd or adamw.")


class LRFactor:
    """lr multiplier as a function of the optimizer step: linear warmup, then the chosen decay.

    A plain object (not a closure) so LambdaLR can store it in its state_dict.
    """

    def __init__(
        self,
        *,
        name: str,
        total_steps: int,
        steps_per_epoch: int,
        warmup_epochs: float,
        warmup_factor: float,
        warmup_steps: int | None = None,
        step_size: int,
        milestones: list[int],
        gamma: float,
        min_lr_ratio: float,
        power: float,
    ):
        if name not in ("step", "multistep", "cosine", "poly", "constant"):
            raise ConfigError(
                f"sched.name={name!r} is not known; choose step, multistep, cosine, poly or constant."
            )
        self.name = name
        self.total_steps = max(1, total_steps)
        self.steps_per_epoch = max(1, steps_per_epoch)
        if warmup_steps is None:
            self.warmup_steps = round(warmup_epochs * self.steps_per_epoch)
        else:  # torchvision's detection engine: min(1000, len(data_loader) - 1), within the first epoch
            self.warmup_steps = min(warmup_steps, self.steps_per_epoch - 1)
        self.warmup_factor = warmup_factor
        self.step_size = step_size
        self.milestones = list(milestones)
        self.gamma = gamma
        self.min_lr_ratio = min_lr_ratio
        self.power = power

    def decay(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        progress = min(1.0, step / self.total_steps)
        if self.name == "step":
            return self.gamma ** (epoch // self.step_size)
        if self.name == "multistep":
            return self.gamma ** sum(epoch >= m for m in self.milestones)
        if self.name == "cosine":
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.name == "poly":
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * (1 - progress) ** self.power
        return 1.0

    def __call__(self, step: int) -> float:
        factor = self.decay(step)
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Any, *, steps_per_epoch: int, total_steps: int
) -> LambdaLR:
    factor = LRFactor(
        name=cfg.name,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=cfg.warmup_epochs,
        warmup_factor=cfg.warmup_factor,
        warmup_steps=cfg.warmup_steps,
        step_size=cfg.step_size,
        milestones=list(cfg.milestones),
        gamma=cfg.gamma,
        min_lr_ratio=cfg.min_lr_ratio,
        power=cfg.power,
    )
    return LambdaLR(optimizer, factor)
