"""One segmentation sample, as every segmentation dataset (VOC, COCO, the built-in shapes) reads it: the image and
its label map checked against each other, then the joint transform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.data.decoding.palette import IGNORE_INDEX
from cvtrain.errors import DataError

JointTransform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple[Any, Any]]
SegmentationSample = tuple[tv_tensors.Image, tv_tensors.Mask, dict[str, Any]]


def load_segmentation_sample(
    *,
    image_path: Path,
    image_id: str,
    read_mask: Callable[[], np.ndarray],
    mask_source: str,
    num_classes: int,
    transforms: JointTransform | None,
) -> SegmentationSample | BadSample:
    """Read one (image, mask, meta) sample, or a `BadSample` saying which file is wrong and how.

    Shared by every segmentation dataset. `read_mask` returns uint8 indices [H, W] or raises `DataError`;
    `mask_source` names the file it comes from in messages. Problems are returned, not raised, so a DataLoader
    worker never crashes: the main process decides (`data.on_bad_image`).
    """
    try:
        image = read_image(image_path)
    except BadImageError as e:
        return BadSample(path=str(image_path), reason=e.reason)
    try:
        mask = read_mask()
    except DataError as e:
        return BadSample(path=mask_source, reason=str(e))
    height, width = image.shape[-2:]
    if mask.shape != (height, width):
        error = DataError(
            f"mask {mask_source} is {mask.shape[0]}x{mask.shape[1]} (HxW) but image {image_path} is "
            f"{height}x{width}; the mask must have its image's size: regenerate or replace the mask"
        )
        return BadSample(path=str(image_path), reason=str(error))
    out_of_range = (mask >= num_classes) & (mask != IGNORE_INDEX)
    if out_of_range.any():
        value = int(mask[out_of_range].max())
        error = DataError(
            f"mask {mask_source} contains class index {value}, but the dataset has {num_classes} classes "
            f"(0..{num_classes - 1}, {IGNORE_INDEX} = ignore): check the class list for this dataset"
        )
        return BadSample(path=mask_source, reason=str(error))
    meta = {"image_id": image_id, "path": str(image_path), "orig_size": (int(height), int(width))}
    image_tv = tv_tensors.Image(image)
    mask_tv = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8)))  # as collated
    if transforms is not None:
        image_tv, mask_tv = transforms(image_tv, mask_tv)
    return image_tv, mask_tv, meta
