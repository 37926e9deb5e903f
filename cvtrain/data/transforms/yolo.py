"""`aug=yolo`: the augmentations a YOLO user expects, with torchvision.transforms.v2 so boxes follow the image.

Training: letterbox (resize the longer side to `aug.image_size`, a multiple of 32, keeping the aspect ratio,
then pad to a centred square in grey 114), HSV jitter (`aug.hsv` = hue, saturation, value gains, as
`ColorJitter`), random affine (`aug.scale_range`, `aug.translate`), horizontal / vertical flips and
`SanitizeBoundingBoxes` (degenerate or pushed-out boxes dropped with their labels). Mosaic is a dataset wrapper
(`cvtrain/data/transforms/mosaic.py`) applied before this pipeline. Training runs all of it in one pass with one resize
(`cvtrain/data/transforms/yolo_train.py`); `yolo_reference_transforms` is the same as a chain of torchvision transforms.

Evaluation: the same letterbox resize but no padding here: the YOLO models pad at the bottom/right to a multiple
of 32 themselves and return boxes in the unpadded input's pixels, so the detection task's own mapping
(`meta["input_size"]`, recorded by its `collate`, back to `meta["orig_size"]`) puts boxes in original pixels.
"""

from __future__ import annotations

from typing import Any

from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvtrain.data.transforms.fields import scale_range
from cvtrain.data.transforms.yolo_train import PAD_VALUE, YoloTrainTransform
from cvtrain.errors import ConfigError

__all__ = ["PAD_VALUE", "LetterBox", "letterbox_size", "yolo_reference_transforms", "yolo_transforms"]


class LetterBox(v2.Transform):
    """Resize so the longer side is `size` (aspect kept); with `pad`, pad to a centred `size` x `size` square."""

    def __init__(self, *, size: int, pad: bool, fill: int = PAD_VALUE) -> None:
        super().__init__()
        self.size = size
        self.pad = pad
        self.fill = fill

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        ratio = self.size / max(height, width)
        new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
        left, top = (self.size - new_w) // 2, (self.size - new_h) // 2
        padding = [left, top, self.size - new_w - left, self.size - new_h - top] if self.pad else None
        return {"resized": [new_h, new_w], "padding": padding}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.BoundingBoxes):
            return inpt  # labels and other entries pass through
        out = F.resize(inpt, params["resized"], antialias=True)
        if params["padding"] is not None:
            fill = self.fill if isinstance(inpt, tv_tensors.Image) else 0
            out = F.pad(out, params["padding"], fill=fill)
        return out


def letterbox_size(aug: Any) -> int:
    size = int(aug.image_size)
    if size < 32 or size % 32:
        raise ConfigError(
            f"aug.image_size={size}: aug=yolo letterboxes to a multiple of 32 (e.g. 640; 128 for data=shapes); "
            "set aug.image_size (or data.image_size) accordingly"
        )
    return size


def _hsv(aug: Any) -> tuple[float, float, float] | None:
    value = getattr(aug, "hsv", None)
    if value is None:
        return None
    gains = tuple(float(v) for v in value)
    if len(gains) != 3 or not (0 <= gains[0] <= 0.5 and gains[1] >= 0 and gains[2] >= 0):
        raise ConfigError(
            f"aug.hsv={list(value)} must be [hue, saturation, value] gains, hue in [0, 0.5], e.g. [0.015, 0.7, 0.4]"
        )
    return gains  # type: ignore[return-value]


def _affine(aug: Any) -> v2.RandomAffine | None:
    translate = float(getattr(aug, "translate", 0.0))
    if not 0 <= translate < 1:
        raise ConfigError(f"aug.translate={translate} must be a fraction of the image in [0, 1), e.g. 0.1")
    scale = scale_range(aug)
    if translate == 0 and (scale is None or scale == (1.0, 1.0)):
        return None
    return v2.RandomAffine(
        degrees=0.0,
        translate=(translate, translate) if translate else None,
        scale=scale,
        interpolation=v2.InterpolationMode.BILINEAR,
        fill={tv_tensors.Image: PAD_VALUE, "others": 0},
    )


def _jitter(aug: Any) -> v2.ColorJitter | None:
    hsv = _hsv(aug)
    if hsv is None or not any(hsv):
        return None
    return v2.ColorJitter(brightness=hsv[2], saturation=hsv[1], hue=hsv[0])


def yolo_transforms(aug: Any, *, train: bool) -> v2.Compose | YoloTrainTransform:
    """The `aug=yolo` pipeline (see the module docstring) for `transforms(image, target)`: training runs it in
    one pass (`YoloTrainTransform`, what `yolo_reference_transforms` does, faster)."""
    size = letterbox_size(aug)
    if not train:
        return v2.Compose([LetterBox(size=size, pad=False)])
    return YoloTrainTransform(
        size=size,
        jitter=_jitter(aug),
        affine=_affine(aug),
        hflip=float(aug.hflip),
        vflip=float(getattr(aug, "vflip", 0.0)),
        fallback=yolo_reference_transforms(aug),
    )


def yolo_reference_transforms(aug: Any) -> v2.Compose:
    """The training pipeline as a chain of torchvision transforms (each one interpolating or converting on its
    own): the reference `YoloTrainTransform` is tested against."""
    steps: list[Any] = [LetterBox(size=letterbox_size(aug), pad=True)]
    jitter = _jitter(aug)
    if jitter is not None:
        steps.append(jitter)
    affine = _affine(aug)
    if affine is not None:
        steps.append(affine)
    if aug.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=aug.hflip))
    if getattr(aug, "vflip", 0.0) > 0:
        steps.append(v2.RandomVerticalFlip(p=aug.vflip))
    steps.append(v2.SanitizeBoundingBoxes())  # images stay uint8: the task makes them float on the device
    return v2.Compose(steps)
