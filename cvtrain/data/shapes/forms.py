"""`data=shapes` gives the form the model's task needs: class folders for a classifier, VOC / COCO boxes for a
detector (COCO boxes and instance masks for Mask R-CNN), VOC palette masks for a segmentation model (each form's writer and builder live in its own module)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from cvtrain.data.shapes.detection import build_shapes_detection
from cvtrain.data.shapes.scenes import build_shapes_classification
from cvtrain.data.shapes.segmentation import build_shapes_segmentation
from cvtrain.data.splits import DataSplits
from cvtrain.errors import ConfigError

SHAPES_FORMS: dict[str, Callable[..., DataSplits]] = {
    "classification": build_shapes_classification,
    "detection": build_shapes_detection,
    "instance_segmentation": partial(build_shapes_detection, masks=True),
    "segmentation": build_shapes_segmentation,
}


def build_shapes(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    if task not in SHAPES_FORMS:
        raise ConfigError(f"data=shapes has no {task} form.")
    return SHAPES_FORMS[task](cfg, aug=aug, need_train=need_train, require_images=require_images)
