"""Batching the detection contract's inputs: a list of differently sized images and their box targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import torch
import torch.nn.functional as F

from cvtrain.errors import ConfigError

# The grey of YOLO letterboxing (114/255): padding looks like the letterbox borders seen in training.
PAD_VALUE = 114 / 255


def check_images(images: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    """The contract's images: float [3, H, W] tensors in 0..1 (a batched [B, 3, H, W] tensor is split)."""
    images = list(images)
    if not images:
        raise ValueError("a detection model needs at least one image")
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ValueError(
                f"image {i} must be a float tensor [3, H, W] in 0..1, got {tuple(image.shape)} {image.dtype}"
            )
    return images


def pad_images(
    images: Sequence[torch.Tensor], *, multiple: int = 32, value: float = PAD_VALUE
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Pad every image at the bottom/right (pixel coordinates stay valid) to one size, a multiple of `multiple`.

    Returns the batch [B, 3, H, W] and each image's own (height, width).
    """
    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    height = -(-max(h for h, _ in sizes) // multiple) * multiple
    width = -(-max(w for _, w in sizes) // multiple) * multiple
    batch = torch.stack(
        [F.pad(im, (0, width - im.shape[-1], 0, height - im.shape[-2]), value=value) for im in images]
    )
    return batch, sizes


def pad_targets(
    targets: Sequence[dict[str, torch.Tensor]],
    image_sizes: Sequence[tuple[int, int]],
    *,
    num_classes: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image {"boxes" XYXY pixels [N, 4], "labels" [N]} → labels [B, M], boxes [B, M, 4], mask [B, M].

    M is the largest N in the batch; shorter lists are padded and masked out. Boxes are clipped to their
    image's own size, so nothing is assigned inside the padding.
    """
    if len(targets) != len(image_sizes):
        raise ValueError(f"got {len(image_sizes)} images but {len(targets)} targets")
    counts = [len(target["labels"]) for target in targets]
    labels = torch.zeros(len(targets), max(counts, default=0), dtype=torch.long, device=device)
    boxes = torch.zeros(*labels.shape, 4, dtype=torch.float32, device=device)
    mask = torch.zeros(labels.shape, dtype=torch.bool, device=device)
    if labels.numel() == 0:
        return labels, boxes, mask
    # All images at once: the range check is the only wait for the GPU (per image it was two, plus a blocking copy of
    # each image's size limits). Slots and limits are built on the host and copied without waiting.
    all_labels = torch.cat([target["labels"].reshape(-1) for target in targets]).to(device, torch.long)
    if ((all_labels < 0) | (all_labels >= num_classes)).any():
        _raise_label_range(targets, num_classes)
    all_boxes = torch.cat([target["boxes"].reshape(-1, 4) for target in targets]).to(device, torch.float32)
    per_image = torch.tensor(counts)
    rows = torch.arange(len(targets)).repeat_interleave(per_image)
    cols = torch.arange(len(rows)) - (per_image.cumsum(0) - per_image).repeat_interleave(per_image)
    sizes = torch.tensor([(w, h, w, h) for h, w in image_sizes], dtype=torch.float32)
    rows, cols = _to_device_async(torch.stack([rows, cols]), device)
    limits = _to_device_async(sizes.repeat_interleave(per_image, dim=0), device)
    labels[rows, cols] = all_labels
    boxes[rows, cols] = torch.minimum(all_boxes.clamp(min=0), limits)
    mask[rows, cols] = True
    return labels, boxes, mask


def _to_device_async(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy that does not wait for the GPU: from pinned memory, whose block torch reuses only once the copy is done."""
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def _raise_label_range(targets: Sequence[dict[str, torch.Tensor]], num_classes: int) -> NoReturn:
    for i, target in enumerate(targets):
        image_labels = target["labels"]
        if len(image_labels) and (image_labels.min() < 0 or image_labels.max() >= num_classes):
            raise ConfigError(
                f"target labels of image {i} span {int(image_labels.min())}..{int(image_labels.max())}, outside "
                f"0..{num_classes - 1}: set model.num_classes to the dataset's number of classes."
            )
    raise ConfigError(
        f"target labels outside 0..{num_classes - 1}: set model.num_classes to the dataset's classes."
    )
