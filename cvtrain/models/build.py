"""Models from the `model` group: dispatch on `model.task`; each builder takes keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.classification import build_classifier
from cvtrain.models.detection import build_detection_model
from cvtrain.models.segmentation import build_segmentation_model
from cvtrain.models.yolo import YOLO_MODELS, build_yolo


def _classifier(cfg: Any, num_classes: int) -> nn.Module:
    return build_classifier(
        arch=cfg.arch,
        num_classes=num_classes,
        pretrained=cfg.pretrained,
        freeze=cfg.freeze,
        dropout=cfg.dropout,
    )


def _detector(cfg: Any, num_classes: int) -> nn.Module:
    if cfg.name in YOLO_MODELS:
        return _yolo(cfg, num_classes)
    # Every key of the model's schema but name/task is a builder option (None: torchvision's default).
    options = {key: cfg[key] for key in cfg if key not in ("name", "task")}
    return build_detection_model(name=cfg.name, num_classes=num_classes, **options)


def _yolo(cfg: Any, num_classes: int) -> nn.Module:
    # `yolo` has no pretrained weights (yolo_v1 takes `pretrained` for its resnet18 trunk).
    options = {key: cfg[key] for key in cfg if key not in ("name", "task")}
    if cfg.name == "yolo" and options.pop("pretrained", False):
        raise ConfigError("model=yolo has no pretrained weights: drop model.pretrained=true.")
    return build_yolo(name=cfg.name, num_classes=num_classes, **options)


def _segmenter(cfg: Any, num_classes: int) -> nn.Module:
    # Every key of the model's schema is a builder option but name/task and the loss options the task reads.
    loss_keys = ("aux_weight", "class_weights")
    options = {key: cfg[key] for key in cfg if key not in ("name", "task", *loss_keys)}
    return build_segmentation_model(name=cfg.name, num_classes=num_classes, **options)


# Builders by `model.task`: (model cfg, num_classes) -> nn.Module.
BUILDERS: dict[str, Callable[[Any, int], nn.Module]] = {
    "classification": _classifier,
    "detection": _detector,
    "segmentation": _segmenter,
}


def build_model(cfg: Any, *, num_classes: int) -> nn.Module:
    if cfg.task not in BUILDERS:
        raise ConfigError(f"model.task={cfg.task!r} (model={cfg.name}) is not one of {sorted(BUILDERS)}.")
    return BUILDERS[cfg.task](cfg, num_classes)
