"""The sample and box conventions every detection dataset (VOC, COCO, ...) shares.

Boxes are XYXY in COCO's continuous 0-based pixels; unusable annotations are dealt with at load time
(`annotations/checks.py`: an error, or skipped and listed); a sample is `(tv_tensors.Image, {"boxes":
BoundingBoxes, "labels": int64}, meta)`, or a `BadSample` when its image cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.images import BadImageError, exif_orientation, read_bytes, read_image

Target = dict[str, torch.Tensor]
Sample = tuple[tv_tensors.Image, Target, dict[str, Any]]
DetectionTransforms = Callable[[tv_tensors.Image, Target], tuple[tv_tensors.Image, Target]]


def make_target(
    boxes: np.ndarray, labels: np.ndarray, canvas_size: tuple[int, int], masks: np.ndarray | None = None
) -> Target:
    """Build the training target; boxes sticking out of the image are clamped to it (torchvision's clamp).
    Instance masks ([N, H, W] uint8, one per box) become a `tv_tensors.Mask`: the transforms move them too."""
    bounding = tv_tensors.BoundingBoxes(
        torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas_size
    )
    target = {
        "boxes": F.clamp_bounding_boxes(bounding),
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
    }
    if masks is not None:
        target["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
    return target


def load_sample(
    path: Path,
    image_id: Any,
    boxes: np.ndarray,
    labels: np.ndarray,
    transforms: DetectionTransforms | None,
    *,
    size: tuple[int, int],
    masks: np.ndarray | None = None,
) -> Sample | BadSample:
    """Read one image and build `(image, target, meta)`; an unreadable image becomes a `BadSample`, and so does
    one whose size (as displayed: EXIF orientation applied) differs from the (height, width) its annotation
    records, `size`: the boxes (and the instance `masks`, drawn at that size) would not be in its pixels."""
    try:
        pixels = read_image(path)
    except BadImageError as e:
        return BadSample(path=e.path, reason=e.reason)
    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    if (height, width) != tuple(size):
        return BadSample(path=str(path), reason=size_mismatch(path, (height, width), size))
    image = tv_tensors.Image(pixels)
    target = make_target(boxes, labels, (height, width), masks)
    meta = {"image_id": image_id, "path": str(path), "orig_size": (height, width)}
    if transforms is not None:
        image, target = transforms(image, target)
    return image, target, meta


def size_mismatch(path: Path, shown: tuple[int, int], recorded: tuple[int, int]) -> str:
    """Why an image whose displayed (height, width) is `shown` does not fit an annotation that records `recorded`."""
    try:
        orientation = exif_orientation(read_bytes(path))
    except BadImageError:  # gone since it was decoded: the sizes alone
        orientation = 1
    turned = f", as displayed after its EXIF orientation {orientation}" if orientation != 1 else ""
    what = (
        f"the image is {shown[0]}x{shown[1]} (height x width{turned}) but its annotation says "
        f"{recorded[0]}x{recorded[1]}"
    )
    if orientation != 1 and tuple(recorded) == shown[::-1]:
        return (
            f"{what}, the size of the stored, unrotated pixels: record the displayed size with boxes drawn on "
            "the displayed picture, or, if the boxes are of the unrotated pixels, set the file's EXIF "
            "orientation to 1"
        )
    return f"{what}: correct the annotation's width and height (or replace the image)"
