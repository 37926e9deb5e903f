"""The task follows from the model: `model.task` names it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvtrain.contracts.task import Task
from cvtrain.errors import ConfigError
from cvtrain.tasks.classification import ClassificationTask
from cvtrain.tasks.detection import DetectionTask
from cvtrain.tasks.segmentation import SegmentationTask


def _classification(model_cfg: Any, class_names: list[str], predict_cfg: Any, aug_cfg: Any) -> Task:
    return ClassificationTask(
        class_names=class_names,
        topk=predict_cfg.topk,
        label_smoothing=model_cfg.label_smoothing,
        mixup=aug_cfg.mixup,
        cutmix=aug_cfg.cutmix,
    )


def _detection(model_cfg: Any, class_names: list[str], predict_cfg: Any, aug_cfg: Any) -> Task:
    return DetectionTask(class_names=class_names, score_threshold=predict_cfg.score_threshold)


def _segmentation(model_cfg: Any, class_names: list[str], predict_cfg: Any, aug_cfg: Any) -> Task:
    return SegmentationTask(
        class_names=class_names, class_weights=model_cfg.class_weights, aux_weight=model_cfg.aux_weight
    )


# Tasks by `model.task`: (model cfg, class names, predict cfg, aug cfg) -> Task.
BUILDERS: dict[str, Callable[[Any, list[str], Any, Any], Task]] = {
    "classification": _classification,
    "detection": _detection,
    "segmentation": _segmentation,
}


def build_task(model_cfg: Any, *, class_names: list[str], predict_cfg: Any, aug_cfg: Any) -> Task:
    if model_cfg.task not in BUILDERS:
        raise ConfigError(f"model.task={model_cfg.task!r} is not one of {sorted(BUILDERS)}.")
    return BUILDERS[model_cfg.task](model_cfg, class_names, predict_cfg, aug_cfg)
