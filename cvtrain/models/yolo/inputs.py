"""Batching the detection contract's inputs: a list of differently sized images and their box targets."""

from __future__ import annotations

from collections.abc import Sequence

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
    count = max((len(t["labels"]) for t in targets), default=0)
    labels = torch.zeros(len(targets), count, dtype=torch.long, device=device)
    boxes = torch.zeros(len(targets), count, 4, dtype=torch.float32, device=device)
    mask = torch.zeros(len(targets), count, dtype=torch.bool, device=device)
    for i, (target, (height, width)) in enumerate(zip(targets, image_sizes, strict=True)):
        n = len(target["labels"])
        if n == 0:
            continue
        image_labels = target["labels"].to(device=device, dtype=torch.long)
        if image_labels.min() < 0 or image_labels.max() >= num_classes:
            raise ConfigError(
                f"target labels of image {i} span {int(image_labels.min())}..{int(image_labels.max())}, outside "
                f"0..{num_classes - 1}: set model.num_classes to the dataset's number of classes."
            )
        image_boxes = target["boxes"].to(device=device, dtype=torch.float32).reshape(n, 4)
        limits = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
        labels[i, :n] = image_labels
        boxes[i, :n] = torch.minimum(image_boxes.clamp(min=0), limits)
        mask[i, :n] = True
    return labels, boxes, mask
