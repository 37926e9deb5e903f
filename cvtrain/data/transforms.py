"""Transform pipelines built from the `aug` group, with torchvision.transforms.v2: the classification pipeline,
and `eval_transform`, each task's evaluation transform (also what `cvtrain predict` applies to arbitrary images).

Inputs are uint8 `tv_tensors.Image`; classification outputs are normalised float tensors. Presets
(`aug=imagenet|alexnet|none`) are just different values of the same fields. The detection and segmentation
pipelines live in `det_transforms.py` and `seg_transforms.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchvision.transforms import v2

from cvtrain.data.det_transforms import detection_transforms
from cvtrain.data.seg_transforms import segmentation_transforms


def eval_resize_size(aug: Any) -> int:
    return aug.resize_size if aug.resize_size is not None else round(aug.image_size / 0.875)


def classification_transforms(aug: Any, *, train: bool) -> v2.Compose:
    """train: (random resized crop | resize + random crop) + flip; eval: resize + centre crop. Then normalise."""
    size = aug.image_size
    if train and aug.random_resized_crop:
        geometry = [v2.RandomResizedCrop(size, scale=tuple(aug.crop_scale), antialias=True)]
    elif train:
        geometry = [v2.Resize(eval_resize_size(aug), antialias=True), v2.RandomCrop(size)]
    else:
        geometry = [v2.Resize(eval_resize_size(aug), antialias=True), v2.CenterCrop(size)]
    flip = [v2.RandomHorizontalFlip(aug.hflip)] if train and aug.hflip > 0 else []
    return v2.Compose(
        [
            *geometry,
            *flip,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(aug.mean), std=list(aug.std)),
            v2.ToPureTensor(),
        ]
    )


# The evaluation transform of each task, by `model.task`.
EVAL_TRANSFORMS: dict[str, Callable[[Any], Callable]] = {
    "classification": lambda aug: classification_transforms(aug, train=False),
    "detection": lambda aug: detection_transforms(aug, train=False),
    "instance_segmentation": lambda aug: detection_transforms(aug, train=False),
    "segmentation": lambda aug: segmentation_transforms(aug, train=False),
}


def eval_transform(task: str, aug: Any) -> Callable:
    """The evaluation transform of `task` for `aug`: what validation data gets, and `cvtrain predict`'s inputs."""
    return EVAL_TRANSFORMS[task](aug)
