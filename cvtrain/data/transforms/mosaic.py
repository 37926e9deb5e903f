"""Mosaic (YOLOv4): four training images on one 2S x 2S canvas around a random centre, as a dataset wrapper.

`MosaicDataset` reads untransformed samples from a detection dataset (built with `transforms=None`), with
probability `p` combines the sample with three random others, and then applies the training pipeline (e.g.
`yolo_transforms`, whose letterbox brings the canvas back to S). Each image is first resized so its longer side is
S; the part of it that falls outside the canvas is cut off, and its boxes are clipped to the part that stays
visible; boxes left under one pixel wide or high are removed with their labels.

`set_epoch(epoch, epochs)` switches mosaic off for the last `close_mosaic` epochs (the engine calls it before each
epoch). The epoch lives in a shared-memory tensor so persistent DataLoader workers see it too.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.jpeg import resize_box
from cvtrain.data.samples.detection import DetectionTransforms
from cvtrain.data.transforms.yolo import PAD_VALUE
from cvtrain.errors import ConfigError

Sample = tuple[tv_tensors.Image, dict[str, Any], dict[str, Any]]

log = logging.getLogger(__name__)


def mosaic(samples: list[Sample], *, size: int, centre: tuple[int, int]) -> Sample:
    """Four (image, target, meta) samples → one 2·size canvas; image i fills the quadrant i (TL, TR, BL, BR) of
    `centre` (x, y). Returns the canvas, the kept boxes and labels, and the first sample's meta."""
    if len(samples) != 4:
        raise ValueError(f"mosaic needs 4 samples, got {len(samples)}")
    # Height x width x channel, as the decoder's buffer and the training transform's resize want it: the images
    # are copied in row by row, and the image returned is a [3, 2S, 2S] (channels-last) view of it.
    canvas = torch.full((2 * size, 2 * size, 3), PAD_VALUE, dtype=torch.uint8)
    xc, yc = centre
    all_boxes, all_labels = [], []
    for quadrant, (image, target, _) in enumerate(samples):
        h, w = image.shape[-2:]
        ratio = size / max(h, w)
        nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
        pixels = image.as_subclass(torch.Tensor)
        resized = pixels if (nh, nw) == (h, w) else resize_box(pixels, (0, 0, h, w), (nh, nw))
        # Where the image's corner touching the centre lands; the rest is cut at the canvas edge.
        x0 = xc - nw if quadrant in (0, 2) else xc
        y0 = yc - nh if quadrant in (0, 1) else yc
        cx0, cy0 = max(x0, 0), max(y0, 0)
        cx1, cy1 = min(x0 + nw, 2 * size), min(y0 + nh, 2 * size)
        canvas[cy0:cy1, cx0:cx1] = resized[:, cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].permute(1, 2, 0)
        boxes = target["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4)
        boxes = boxes * boxes.new_tensor([nw / w, nh / h, nw / w, nh / h]) + boxes.new_tensor(
            [x0, y0, x0, y0]
        )
        boxes[:, 0::2] = boxes[:, 0::2].clamp(cx0, cx1)  # clipped to the visible part of this image
        boxes[:, 1::2] = boxes[:, 1::2].clamp(cy0, cy1)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        all_boxes.append(boxes[keep])
        all_labels.append(target["labels"][keep])
    out_target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.cat(all_boxes), format="XYXY", canvas_size=(2 * size, 2 * size)
        ),
        "labels": torch.cat(all_labels),
    }
    return tv_tensors.Image(canvas.permute(2, 0, 1)), out_target, samples[0][2]


class MosaicDataset(Dataset):
    """Wraps a detection dataset built without transforms; attributes not defined here are the dataset's."""

    def __init__(
        self,
        *,
        dataset: Any,
        transforms: DetectionTransforms,
        size: int,
        p: float = 1.0,
        close_mosaic: int = 0,
    ) -> None:
        if not 0 <= p <= 1:
            raise ConfigError(f"aug.mosaic={p} is a probability: use a value in [0, 1]")
        if close_mosaic < 0:
            raise ConfigError(f"aug.close_mosaic={close_mosaic} must be 0 or a number of final epochs")
        self.dataset = dataset
        self.transforms = transforms
        self.size = size
        self.p = p
        self.close_mosaic = close_mosaic
        self._mosaic_on = torch.ones(1, dtype=torch.bool).share_memory_()

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found normally: class_names, records, batch_sampler_factory, ...
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Mosaic on for epochs 0 .. epochs - close_mosaic - 1 (0-based `epoch` of `epochs` in all)."""
        if epoch == 0 and self.p > 0 and self.close_mosaic >= epochs:  # aug=yolo's 10 against a short run
            log.warning(
                "aug.close_mosaic=%d is not below trainer.epochs=%d: no image is mosaicked in this run. Set "
                "aug.close_mosaic below trainer.epochs to train with mosaic, or aug.mosaic=0 to say so.",
                self.close_mosaic,
                epochs,
            )
        self._mosaic_on[0] = epoch < epochs - self.close_mosaic

    @property
    def mosaic_on(self) -> bool:
        return bool(self._mosaic_on[0])

    def __getitem__(self, index: int) -> Sample | BadSample:
        sample = self.dataset[index]
        if isinstance(sample, BadSample):
            return sample
        if self.mosaic_on and self.p > 0 and torch.rand(()).item() < self.p:
            others = [self.dataset[int(i)] for i in torch.randint(len(self.dataset), (3,))]
            if not any(isinstance(o, BadSample) for o in others):  # else: this sample alone
                low, high = self.size // 2, 3 * self.size // 2
                centre = (int(torch.randint(low, high + 1, ())), int(torch.randint(low, high + 1, ())))
                sample = mosaic([sample, *others], size=self.size, centre=centre)
        image, target, meta = sample
        image, target = self.transforms(image, target)
        return image, target, meta


def with_mosaic(dataset: Any, aug: Any) -> MosaicDataset:
    """Move `dataset`'s training transforms after a mosaic of `aug.mosaic` probability (canvas 2·aug.image_size)."""
    transforms, dataset.transforms = dataset.transforms, None
    return MosaicDataset(
        dataset=dataset,
        transforms=transforms,
        size=int(aug.image_size),
        p=float(aug.mosaic),
        close_mosaic=int(aug.close_mosaic),
    )
