"""Models from the `model` group: dispatch on the model's family; each builder takes keyword arguments."""

from __future__ import annotations

from typing import Any

from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.classification import build_classifier


def build_model(cfg: Any, *, num_classes: int) -> nn.Module:
    if cfg.task == "classification":
        return build_classifier(
            arch=cfg.arch,
            num_classes=num_classes,
            pretrained=cfg.pretrained,
            freeze=cfg.freeze,
            dropout=cfg.dropout,
        )
    raise ConfigError(f"model.task={cfg.task!r} is not supported by model={cfg.name}.")
