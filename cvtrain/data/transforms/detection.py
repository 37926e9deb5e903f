"""Detection transforms with torchvision.transforms.v2: boxes (`tv_tensors.BoundingBoxes`) follow the image.

A sample is `(tv_tensors.Image uint8, {"boxes": BoundingBoxes XYXY, "labels": int64}, meta)`; the pipeline is
called as `transforms(image, target)`. Training: optional photometric distortion, optional random scale of the
content (`aug.scale_range`: zoom out onto a mean-coloured canvas or in, cropping, on the same canvas size), random
horizontal flip, then `SanitizeBoundingBoxes` drops boxes a transform made degenerate (under one pixel wide or
high, or pushed out of the image) together with their labels. Evaluation changes nothing: the torchvision
detectors resize inside (`model.min_size` / `model.max_size`) and normalise themselves, and their boxes come back
in the input image's pixels. Images stay uint8; the detection task makes them float in [0, 1] on the device.
"""

from __future__ import annotations

from typing import Any

from torchvision.transforms import v2

from cvtrain.data.transforms.detection_augment import PhotometricDistort, RandomScale
from cvtrain.data.transforms.fields import mean_fill, scaling


def detection_transforms(aug: Any, *, train: bool) -> v2.Compose:
    """The detection pipeline for the `aug` config (fields `hflip`, `scale_range`, `photometric`); YOLO's with
    `aug.letterbox`."""
    if getattr(aug, "letterbox", False):
        from cvtrain.data.transforms.yolo import yolo_transforms  # letterbox, HSV, affine, flips (aug=yolo)

        return yolo_transforms(aug, train=train)
    if not train:
        return v2.Compose([v2.Identity()])  # the detector resizes and normalises itself
    steps: list[Any] = []
    if getattr(aug, "photometric", False):
        steps.append(PhotometricDistort(p=0.5))  # torchvision's draws, PIL's uint8 kernels
    scale = scaling(aug)
    if scale is not None:
        fill = mean_fill(aug)  # zoomed-out borders in the mean colour, not black
        steps.append(RandomScale(scale, fill))  # RandomAffine's draws, a resize and a centred crop or pad
    if aug.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=aug.hflip))
    steps.append(v2.SanitizeBoundingBoxes())
    return v2.Compose(steps)
