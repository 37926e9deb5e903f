"""Transform pipelines built from the `aug` group, with torchvision.transforms.v2.

Inputs are uint8 `tv_tensors.Image`; outputs are normalised float tensors. Presets (`aug=imagenet|alexnet|none`)
are just different values of the same fields.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2


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
