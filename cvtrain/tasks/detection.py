"""Object detection: lists of variable-size images, the detector's named losses, boxes back in original pixels.

Any model that keeps cvtrain's detection contract trains here (torchvision's detectors, our YOLO):
`model(images, targets)` with images a list of float [3, H, W] in 0..1 (batches carry uint8 images; the task
converts them on the device, `cvtrain/tasks/inputs.py`) and targets `{"boxes": XYXY pixels,
"labels": int64 0-based}` returns a dict of named losses in training mode, and in eval mode `model(images)`
returns one `{"boxes", "scores", "labels"}` per image, boxes in that input image's pixels.

With `masks=True` (Mask R-CNN, `model.task=instance_segmentation`) targets also carry `masks` ([N, H, W] uint8)
and the model returns `masks` ([N, 1, H, W] probabilities in the input image's pixels): predictions hold them as
binary masks in the original pixels, scored as COCO mask AP (`segm_map`, ...) beside the box AP, written as RLE
`segmentation` in predictions.json and drawn by `cvtrain predict`.

The evaluator follows the dataset: COCO data is scored with COCOeval on its own json (headline `map`); VOC
data with the devkit's AP (headline `voc_map`) and COCO AP on the COCO view of the same annotations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cvtrain.contracts.batch import Batch, split_bad
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.metrics.detection import detection_evaluator, detection_headline, ground_truth_of
from cvtrain.tasks.inputs import ImageInput

Detections = list[dict[str, torch.Tensor]]


def to_original_pixels(
    boxes: torch.Tensor, input_size: tuple[int, int], orig_size: tuple[int, int]
) -> torch.Tensor:
    """Boxes in the pixels of a (resized) input image -> the original image's pixels."""
    (in_h, in_w), (orig_h, orig_w) = input_size, orig_size
    if (in_h, in_w) == (orig_h, orig_w):
        return boxes
    scale = boxes.new_tensor([orig_w / in_w, orig_h / in_h, orig_w / in_w, orig_h / in_h])
    return boxes * scale


def binary_masks(probabilities: torch.Tensor, orig_size: tuple[int, int]) -> torch.Tensor:
    """Mask R-CNN's [N, 1, h, w] mask probabilities (input pixels) -> [N, H, W] bool masks in the original pixels,
    at torchvision's (and Detectron's) threshold of 0.5."""
    if not len(probabilities):
        return torch.zeros((0, *orig_size), dtype=torch.bool, device=probabilities.device)
    masks = probabilities.float()
    if tuple(masks.shape[-2:]) != orig_size:
        masks = F.interpolate(masks, size=orig_size, mode="bilinear", align_corners=False)
    return masks[:, 0] > 0.5


class DetectionTask:
    name = "detection"
    headline = "map"  # on COCO-format data; data with VOC devkit records monitors voc_map (`monitor`)

    def __init__(
        self,
        *,
        class_names: list[str],
        score_threshold: float = 0.5,
        coco_backend: str = "faster",
        masks: bool = False,
        inputs: ImageInput | None = None,
    ):
        self.class_names = list(class_names)
        self.score_threshold = score_threshold
        self.masks = masks
        self.coco_backend = coco_backend  # faster | pycocotools: who computes COCO AP (the same numbers)
        self.inputs = inputs or ImageInput()  # [0, 1]: the detectors normalise inside

    def collate(self, samples: list[Any]) -> Batch:
        """Images stay a list (sizes differ); `meta["input_size"]` records the size the model sees, so
        `predict` can map boxes back to `meta["orig_size"]` if the transform resized."""
        good, bad = split_bad(samples)
        images, targets, metas = [], [], []
        for image, target, meta in good:
            images.append(image.as_subclass(torch.Tensor))
            metas.append({**meta, "input_size": (int(image.shape[-2]), int(image.shape[-1]))})
            if isinstance(target, dict):
                keys = ("boxes", "labels", "masks") if self.masks else ("boxes", "labels")
                target = {k: target[k].as_subclass(torch.Tensor) for k in keys}
            else:
                target = None  # `cvtrain predict` inputs have no annotation
            targets.append(target)
        return Batch(images=images, targets=targets, meta=metas, bad=bad)

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        losses = model(self.inputs(batch.images, train=True), batch.targets)
        if "loss" in losses:
            raise ValueError("a detection model returns its named losses; the task adds their sum as 'loss'")
        return {"loss": torch.stack([v.float() for v in losses.values()]).sum(), **losses}

    def predict(self, model: nn.Module, batch: Batch) -> Detections:
        outputs = model(self.inputs(batch.images))
        predictions = []
        for out, meta in zip(outputs, batch.meta, strict=True):
            orig_size = tuple(meta["orig_size"])
            prediction = {
                "boxes": to_original_pixels(out["boxes"].float(), meta["input_size"], orig_size),
                "scores": out["scores"].float(),
                "labels": out["labels"].long(),
            }
            if self.masks:
                prediction["masks"] = binary_masks(out["masks"], orig_size)
            predictions.append(prediction)
        return predictions

    def evaluator(self, dataset: Any) -> Evaluator:
        evaluator, _ = detection_evaluator(dataset, self.coco_backend, self.masks, self.score_threshold)
        return evaluator

    def monitor(self, dataset: Any) -> str:
        return detection_headline(ground_truth_of(dataset))
