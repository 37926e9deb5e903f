"""Models from the `model` group: dispatch on `model.task`; each builder takes keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.classification import build_classifier


def _classifier(cfg: Any, num_classes: int) -> nn.Module:
    return build_classifier(
        arch=cfg.arch, num_classes=num_classes, pretrained=cfg.pretrained, freeze=cfg.freeze, dropout=cfg.dropout
    )


# Builders by `model.task`: (model cfg, num_classes) -> nn.Module.
BUILDERS: dict[str, Callable[[Any, int], nn.Module]] = {
    "classification": _classifier,
}


def build_model(cfg: Any, *, num_classes: int) -> nn.Module:
    if cfg.task not in BUILDERS:
        raise ConfigError(f"model.task={cfg.task!r} (model={cfg.name}) is not one of {sorted(BUILDERS)}.")
    return BUILDERS[cfg.task](cfg, num_classes)
