"""Transform pipelines built from the `aug` group, with torchvision.transforms.v2: the classification pipeline,
and `eval_transform`, each task's evaluation transform (also what `cvtrain predict` applies to arbitrary images).

Every pipeline takes and returns uint8 images: the float conversion and normalisation run on the training
device, in the task (`cvtrain/tasks/inputs.py`), so data workers never produce float32. Presets
(`aug=imagenet|alexnet|none`) are just different values of the same fields. The detection and segmentation
pipelines live in `detection.py` and `segmentation.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from cvtrain.data.decoding.crop_plan import CropPlan, finish
from cvtrain.data.decoding.device_decode import JpegCrop
from cvtrain.data.decoding.images import decode_bytes, read_bytes
from cvtrain.data.decoding.jpeg import Box, decode_crop, jpeg_size, resize_box
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.data.transforms.segmentation import segmentation_transforms
from cvtrain.errors import ConfigError


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

    `plan` draws every random choice from the image's size alone, so `read(path)` can draw them from a JPEG's
    header and decode at the smallest DCT scale that serves the box (`cvtrain/data/decoding/jpeg.py`); `__call__` applies
    the same steps to an image already decoded. The draws are torchvision's (`RandomResizedCrop`, `RandomCrop`,
    `RandomHorizontalFlip`), the same random numbers in the same order as the transforms they replace.

    `defer_decode` (`data.decode=device`): `read` returns a JPEG's bytes and plan as a `JpegCrop` for the
    training device to decode and finish (`cvtrain/data/decoding/device_decode.py`)."""

    def __init__(self, aug: Any, *, train: bool, defer_decode: bool = False):
        self.size = int(aug.image_size)
        self.defer_decode = defer_decode
        self.random_crop: v2.RandomResizedCrop | None = None
        self.crop_after_resize: v2.RandomCrop | None = None  # training without the random resized crop
        self.resize = eval_resize_size(aug)  # used without the random resized crop
        if train and aug.random_resized_crop:
            self.random_crop = v2.RandomResizedCrop(self.size, scale=tuple(aug.crop_scale), antialias=True)
        elif self.resize < self.size:
            raise ConfigError(
                f"aug.resize_size={self.resize} is smaller than aug.image_size={self.size}: the crop after the "
                "resize would not fit. Set aug.resize_size >= aug.image_size (or null: image_size / 0.875)."
            )
        elif train:
            self.crop_after_resize = v2.RandomCrop(self.size)
        self.hflip = float(aug.hflip) if train else 0.0

    def geometry(self, height: int, width: int) -> tuple[Box, tuple[int, int]]:
        """The box of a `height` x `width` image that becomes the pipeline's first output, and that output's size."""
        if self.random_crop is not None:
            # torchvision's own sampling (scale, log-uniform ratio, 10 tries, centre-crop fallback) needs only
            # the size: a zero-memory stand-in of the image's shape carries it.
            p = self.random_crop.make_params([_stand_in(height, width)])
            size = self.random_crop.size
            return (p["top"], p["left"], p["height"], p["width"]), (size[0], size[1])
        return (0, 0, height, width), resized_size(height, width, self.resize)

    def plan(self, height: int, width: int) -> CropPlan:
        """Every random choice for an image of `height` x `width`, in the order torchvision's transforms draw them."""
        box, out = self.geometry(height, width)
        crop = None
        if self.random_crop is None:  # resize, then a random (training) or centre (evaluation) crop
            if self.crop_after_resize is not None:
                p = self.crop_after_resize.make_params([_stand_in(*out)])
                crop = (p["top"], p["left"], p["height"], p["width"])
            else:  # v2.CenterCrop's offsets
                top, left = round((out[0] - self.size) / 2), round((out[1] - self.size) / 2)
                crop = (int(top), int(left), self.size, self.size)
        # v2.RandomHorizontalFlip draws only when it is in the pipeline, and flips when the draw is below p
        flip = self.hflip > 0 and bool(torch.rand(1) < self.hflip)
        return CropPlan(box=box, out=out, crop=crop, flip=flip)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        plan = self.plan(*image.shape[-2:])
        return finish(resize_box(image.as_subclass(torch.Tensor), plan.box, plan.out), plan)

    def read(self, path: str | Path) -> torch.Tensor | JpegCrop:
        """Decode the file and transform it: a JPEG at the smallest DCT scale the box allows, anything else (and
        a JPEG libjpeg-turbo refuses) fully, through `decode_bytes`, which raises `BadImageError` if unreadable.
        With `defer_decode`, a JPEG comes back undecoded, as a `JpegCrop`."""
        data = read_bytes(path)
        size = jpeg_size(data)
        if size is not None:
            plan = self.plan(*size)
            if self.defer_decode:
                encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                return JpegCrop(data=encoded, plan=plan, path=str(path))
            try:
                return finish(decode_crop(data, size, plan.box, plan.out), plan)
            except ValueError:
                pass  # truncated or corrupt: the general decoder decides whether it is readable
        return self(decode_bytes(data, path))


def _stand_in(height: int, width: int) -> torch.Tensor:
    """A zero-memory uint8 [3, height, width] for torchvision's parameter sampling, which reads only the size."""
    return torch.empty((1, 1, 1), dtype=torch.uint8).expand(3, height, width)


def classification_transforms(
    aug: Any, *, train: bool, defer_decode: bool = False
) -> ClassificationTransform:
    """The classification pipeline of `aug` (see `ClassificationTransform`)."""
    return ClassificationTransform(aug, train=train, defer_decode=defer_decode)


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
