"""What a data loader yields: one `Batch` per step, built by the task's `collate`, and the `BadSample` marker a
dataset returns in place of a sample whose image could not be read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class BadSample:
    """Returned by a dataset in place of a sample whose image could not be read; the main process (not a worker)
    decides what to do with it (`data.on_bad_image`)."""

    path: str
    reason: str


@runtime_checkable
class DeferredImages(Protocol):
    """A batch of images that data workers left for the training device to finish (`data.decode=device`: JPEG
    bytes decoded there): `to(device)` returns the uint8 batch [B, 3, H, W] on `device`."""

    def to(self, device: torch.device, non_blocking: bool = False) -> torch.Tensor: ...


def stack_images(images: list[Any]) -> torch.Tensor | DeferredImages:
    """One batch of equally sized images: `torch.stack` of uint8 tensors, or, when any sample is left for the
    device (it has `stack`, e.g. `cvtrain.data.decoding.device_decode.JpegCrop`), that sample type's own batch."""
    deferred = next((image for image in images if not isinstance(image, torch.Tensor)), None)
    if deferred is None:
        return torch.stack(images)
    return type(deferred).stack(images)


def move_to(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor inside nested lists, tuples and dicts to `device`; deferred images are finished there."""
    if isinstance(obj, torch.Tensor | DeferredImages):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: move_to(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(move_to(v, device, non_blocking) for v in obj)
    return obj


@dataclass
class Batch:
    """A collated batch.

    images:  a uint8 tensor [B, 3, H, W], or a list of [3, H_i, W_i] tensors when sizes differ (detection); the
             task makes them float on the device (`cvtrain/tasks/inputs.py`). Before `to(device)` they may also
             be `DeferredImages` (JPEGs that `to` decodes on the device); after it, always tensors.
    targets: whatever the task trains on: class indices [B], a list of box dicts, or label maps [B, H, W].
    meta:    one dict per image (path, image_id, orig_size, ...), never moved to the device.
    bad:     samples whose image could not be read; the engine raises or counts them (`data.on_bad_image`).
    """

    images: torch.Tensor | list[torch.Tensor]
    targets: Any
    meta: list[dict[str, Any]]
    bad: list[BadSample] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.meta)

    def to(self, device: torch.device) -> Batch:
        non_blocking = device.type == "cuda"
        return Batch(
            images=move_to(self.images, device, non_blocking),
            targets=move_to(self.targets, device, non_blocking),
            meta=self.meta,
            bad=self.bad,
        )

    def pin_memory(self) -> Batch:
        # Called by DataLoader(pin_memory=True) on custom batch types.
        return Batch(images=_pin(self.images), targets=_pin(self.targets), meta=self.meta, bad=self.bad)


def _pin(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.pin_memory()
    if isinstance(obj, dict):
        return {k: _pin(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_pin(v) for v in obj)
    return obj


def split_bad(samples: list[Any]) -> tuple[list[Any], list[BadSample]]:
    """Separate readable samples from `BadSample` markers (collate functions call this first)."""
    good = [s for s in samples if not isinstance(s, BadSample)]
    bad = [s for s in samples if isinstance(s, BadSample)]
    return good, bad
