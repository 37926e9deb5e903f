"""The task, and the outputs that show and write its predictions, follow from the model: `model.task` names it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from cvtrain.contracts.outputs import PredictionOutputs
from cvtrain.contracts.task import Task
from cvtrain.errors import ConfigError
from cvtrain.tasks.classification import ClassificationTask
from cvtrain.tasks.classification_outputs import ClassificationOutputs
from cvtrain.tasks.detection import DetectionTask
from cvtrain.tasks.detection_outputs import DetectionOutputs
from cvtrain.tasks.inputs import ImageInput
from cvtrain.tasks.segmentation import SegmentationTask
from cvtrain.tasks.segmentation_outputs import SegmentationOutputs


def _classification(
    model_cfg: Any, class_names: list[str], predict_cfg: Any, eval_cfg: Any, aug: Any, inputs: ImageInput
) -> Task:
    return ClassificationTask(
        class_names=class_names,
        inputs=inputs,
        label_smoothing=model_cfg.label_smoothing,
        mixup=aug.mixup,
        cutmix=aug.cutmix,
    )


def _detection(
    model_cfg: Any, class_names: list[str], predict_cfg: Any, eval_cfg: Any, aug: Any, inputs: ImageInput
) -> Task:
    # [0, 1] only: the detectors normalise inside (torchvision's GeneralizedRCNNTransform; our YOLO takes [0, 1])
    return DetectionTask(
        class_names=class_names,
        score_threshold=predict_cfg.score_threshold,
        coco_backend=str(eval_cfg.coco_backend),
        masks=model_cfg.task == "instance_segmentation",
        inputs=ImageInput(lighting=inputs.lighting),
    )


def _segmentation(
    model_cfg: Any, class_names: list[str], predict_cfg: Any, eval_cfg: Any, aug: Any, inputs: ImageInput
) -> Task:
    return SegmentationTask(
        class_names=class_names,
        class_weights=model_cfg.class_weights,
        aux_weight=model_cfg.aux_weight,
        inputs=inputs,
    )


# Tasks by `model.task`: (model cfg, class names, predict cfg, eval cfg, aug cfg, the model input the aug group
# describes) -> Task.
BUILDERS: dict[str, Callable[[Any, list[str], Any, Any, Any, ImageInput], Task]] = {
    "classification": _classification,
    "detection": _detection,
    "instance_segmentation": _detection,  # Mask R-CNN: the detection task with instance masks
    "segmentation": _segmentation,
}


def build_task(
    model_cfg: Any,
    *,
    class_names: list[str],
    predict_cfg: Any,
    eval_cfg: Any,
    aug: Any,
    mean_image: torch.Tensor | None = None,
) -> Task:
    """`aug` (and `mean_image` with `aug.mean_image=true`) says how the uint8 batches become the model's input on
    the device: per-channel mean and std or the mean image, and the lighting noise."""
    if model_cfg.task not in BUILDERS:
        raise ConfigError(f"model.task={model_cfg.task!r} is not one of {sorted(BUILDERS)}.")
    if mean_image is not None and model_cfg.task != "classification":
        raise ConfigError(f"aug.mean_image=true is for classification; model.task is {model_cfg.task}.")
    inputs = ImageInput.normalized(aug, mean_image=mean_image)
    return BUILDERS[model_cfg.task](model_cfg, class_names, predict_cfg, eval_cfg, aug, inputs)


# What shows and writes each task's predictions, by `model.task`: (class names, predict cfg) -> PredictionOutputs.
OUTPUTS: dict[str, Callable[[list[str], Any], PredictionOutputs]] = {
    "classification": lambda names, predict: ClassificationOutputs(class_names=names, topk=predict.topk),
    "detection": lambda names, predict: DetectionOutputs(
        class_names=names, score_threshold=predict.score_threshold
    ),
    "instance_segmentation": lambda names, predict: DetectionOutputs(
        class_names=names, score_threshold=predict.score_threshold
    ),
    "segmentation": lambda names, predict: SegmentationOutputs(class_names=names),
}


def build_outputs(model_cfg: Any, *, class_names: list[str], predict_cfg: Any) -> PredictionOutputs:
    """The pictures (predictions.png), prediction files and tables of `model.task`, beside its task."""
    if model_cfg.task not in OUTPUTS:
        raise ConfigError(f"model.task={model_cfg.task!r} is not one of {sorted(OUTPUTS)}.")
    return OUTPUTS[model_cfg.task](class_names, predict_cfg)
