"""Joint image + mask transforms for semantic segmentation, with torchvision.transforms.v2.

A sample is `(tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask uint8 [H, W])`, transformed as
`transforms(image, mask)`: v2 applies every geometric step to both, and always resizes a `Mask` with nearest
neighbour, so class indices are never blended into values that are not classes.

Training (`aug` fields): random scale of the whole image by a factor drawn from `aug.scale_range` (None: no
scaling), random crop of `aug.image_size` x `aug.image_size` (an image smaller than the crop is padded first:
the image with the mean colour, which normalises to 0, the mask with 255 so the padding counts in neither loss
nor metrics), horizontal flip with probability `aug.hflip`. Evaluation keeps each image at its full resolution, so metrics are
computed on the original pixels. Images stay uint8: the segmentation task normalises them on the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvtrain.data.decoding.palette import IGNORE_INDEX
from cvtrain.data.transforms.fields import mean_fill, scaling
from cvtrain.errors import ConfigError


class RandomScale(v2.Transform):
    """Resize the sample by a factor drawn uniformly from `scale_range`, relative to its own size.

    Images are interpolated bilinearly (with antialiasing when shrinking); masks with nearest neighbour (v2's
    `resize` kernel for `tv_tensors.Mask`).
    """

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = scale_range
        if not 0 < low <= high:
            raise ConfigError(
                f"aug.scale_range={list(scale_range)} must be [low, high] with 0 < low <= high, e.g. [0.5, 2.0]"
            )
        self.scale_range = (float(low), float(high))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = F.get_size(flat_inputs[0])
        low, high = self.scale_range
        scale = low + float(torch.rand(())) * (high - low)
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(
            F.resize, inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True
        )


def segmentation_transforms(aug: Any, *, train: bool) -> v2.Compose:
    """The joint pipeline for `aug` (fields image_size, scale_range, hflip, mean); see the module doc."""
    steps: list[Any] = []
    if train:
        scale = scaling(aug)
        if scale is not None:
            steps.append(RandomScale(scale))
        crop = int(aug.image_size)
        if crop < 1:
            raise ConfigError(f"aug.image_size={crop} must be a positive crop size in pixels")
        steps.append(
            v2.RandomCrop(
                crop,
                pad_if_needed=True,
                fill={tv_tensors.Image: mean_fill(aug), tv_tensors.Mask: IGNORE_INDEX},
            )
        )
        if aug.hflip > 0:
            steps.append(v2.RandomHorizontalFlip(p=aug.hflip))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)
