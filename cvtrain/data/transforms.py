"""Transform pipelines built from the `aug` group, with torchvision.transforms.v2: the classification pipeline,
and `eval_transform`, each task's evaluation transform (also what `cvtrain predict` applies to arbitrary images).

Every pipeline takes and returns uint8 images: the float conversion and normalisation run on the training
device, in the task (`cvtrain/tasks/inputs.py`), so data workers never produce float32. Presets
(`aug=imagenet|alexnet|none`) are just different values of the same fields. The detection and segmentation
pipelines live in `det_transforms.py` and `seg_transforms.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from cvtrain.data.det_transforms import detection_transforms
from cvtrain.data.images import decode_bytes, read_bytes
from cvtrain.data.jpeg import Box, decode_crop, jpeg_size, resize_box
from cvtrain.data.seg_transforms import segmentation_transforms


def eval_resize_size(aug: Any) -> int:
    return aug.resize_size if aug.resize_size is not None else round(aug.image_size / 0.875)


def resized_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """The size `v2.Resize(shorter)` gives an image of `height` x `width`: the shorter side becomes `shorter`,
    the longer one keeps the aspect ratio, truncated."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


class ClassificationTransform:
    """uint8 [3, H, W] in and out. Training: random resized crop, or resize + random crop; evaluation: resize +
    centre crop; then the flip.

    The geometry is a box of the original image resized to an output size, chosen from the image's size alone,
    so `read(path)` can choose it from a JPEG's header and decode at the smallest DCT scale that serves it
    (`cvtrain/data/jpeg.py`); `__call__` applies the same steps to an image already decoded. Both draw the same
    random numbers in the same order as the torchvision transforms they replace."""

    def __init__(self, aug: Any, *, train: bool):
        size = int(aug.image_size)
        self.random_crop: v2.RandomResizedCrop | None = None
        self.resize = eval_resize_size(aug)  # used without the random resized crop
        after: list[v2.Transform] = []
        if train and aug.random_resized_crop:
            self.random_crop = v2.RandomResizedCrop(size, scale=tuple(aug.crop_scale), antialias=True)
        else:
            after.append(v2.RandomCrop(size) if train else v2.CenterCrop(size))
        if train and aug.hflip > 0:
            after.append(v2.RandomHorizontalFlip(aug.hflip))
        self.after = v2.Compose([*after, v2.ToPureTensor()])

    def geometry(self, height: int, width: int) -> tuple[Box, tuple[int, int]]:
        """The box of a `height` x `width` image that becomes the pipeline's first output, and that output's size."""
        if self.random_crop is not None:
            # torchvision's own sampling (scale, log-uniform ratio, 10 tries, centre-crop fallback) needs only
            # the size: a zero-memory stand-in of the image's shape carries it.
            stand_in = torch.empty((1, 1, 1), dtype=torch.uint8).expand(3, height, width)
            p = self.random_crop.make_params([stand_in])
            size = self.random_crop.size
            return (p["top"], p["left"], p["height"], p["width"]), (size[0], size[1])
        return (0, 0, height, width), resized_size(height, width, self.resize)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        box, out = self.geometry(*image.shape[-2:])
        pixels = resize_box(image.as_subclass(torch.Tensor), box, out)
        return self.after(pixels)

    def read(self, path: str | Path) -> torch.Tensor:
        """Decode the file and transform it: a JPEG at the smallest DCT scale the box allows, anything else (and
        a JPEG libjpeg-turbo refuses) fully, through `decode_bytes`, which raises `BadImageError` if unreadable."""
        data = read_bytes(path)
        size = jpeg_size(data)
        if size is not None:
            box, out = self.geometry(*size)
            try:
                return self.after(decode_crop(data, size, box, out))
            except ValueError:
                pass  # truncated or corrupt: the general decoder decides whether it is readable
        return self(decode_bytes(data, path))


def classification_transforms(aug: Any, *, train: bool) -> ClassificationTransform:
    """The classification pipeline of `aug` (see `ClassificationTransform`)."""
    return ClassificationTransform(aug, train=train)


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
