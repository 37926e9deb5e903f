"""What the model takes: the data pipelines deliver uint8 images, and the task turns them into floats on the device
the batch has moved to (the GPU in training), so data workers and the host-to-device copy carry a quarter of the
bytes and no worker spends time on float conversion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms.v2 import functional as F


class ImageInput:
    """uint8 images (a batch [B, 3, H, W], one [3, H, W], or a list of them) -> float32 in [0, 1] (`F.to_dtype`
    with scale, as `v2.ToDtype(torch.float32, scale=True)`), then `F.normalize` by `mean` and `std` when given
    (classifiers, segmenters: `aug.mean`, `aug.std`); detectors normalise inside and take [0, 1]."""

    def __init__(self, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]

    @classmethod
    def normalized(cls, aug: Any) -> ImageInput:
        """Normalised by the `aug` group's per-channel mean and std."""
        return cls(mean=list(aug.mean), std=list(aug.std))

    def __call__(self, images: Any) -> Any:
        if isinstance(images, list | tuple):
            return [self(image) for image in images]
        if images.dtype != torch.uint8:
            raise TypeError(
                f"model inputs must come as uint8 images from the data pipeline (the task converts them on the "
                f"device), got {images.dtype}"
            )
        floats = F.to_dtype(images, torch.float32, scale=True)
        if self.mean is None:
            return floats
        return F.normalize(floats, self.mean, self.std, inplace=True)
