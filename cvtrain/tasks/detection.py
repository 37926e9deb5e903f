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

from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn
from torch.nn import functional as F

from cvtrain.contracts.batch import Batch, split_bad
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.monitor import MonitorMode
from cvtrain.contracts.monitor import monitor_mode as mode_of
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.metrics.detection import detection_evaluator, ground_truth_of
from cvtrain.tasks.detection_outputs import COCOResultsWriter, DrawnDetectionsWriter, draw_detections
from cvtrain.tasks.inputs import ImageInput
from cvtrain.tasks.previews import preview_canvas

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

    @property
    def monitor_mode(self) -> MonitorMode:
        return mode_of(self.monitor)

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
        self.monitor = "map"  # becomes the dataset's headline metric when `evaluator(dataset)` is built
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

    def preview(self, batch: Batch, predictions: Detections, limit: int) -> list[Preview]:
        """The ground-truth boxes next to the detections scoring >= `score_threshold`."""
        previews = []
        for i, found in enumerate(predictions[:limit]):
            image, target, meta = batch.images[i], batch.targets[i], batch.meta[i]
            canvas, scale = preview_canvas(meta, image)
            truth = to_original_pixels(target["boxes"].float(), meta["input_size"], tuple(meta["orig_size"]))
            keep = found["scores"] >= self.score_threshold
            order = found["scores"][keep].argsort(descending=True)
            boxes, labels, scores = (found[k][keep][order].cpu() for k in ("boxes", "labels", "scores"))
            name = Path(meta["path"]).name
            previews.append(
                Preview(
                    (
                        Panel(
                            draw_detections(
                                canvas, truth.cpu() * scale, target["labels"].tolist(), self.class_names
                            ),
                            f"{name}: truth",
                        ),
                        Panel(
                            draw_detections(
                                canvas, boxes * scale, labels.tolist(), self.class_names, scores.tolist()
                            ),
                            f"predicted, score >= {self.score_threshold}",
                        ),
                    )  # fmt: skip
                )
            )
        return previews

    def evaluator(self, dataset: Any) -> Evaluator:
        evaluator, self.monitor = detection_evaluator(
            dataset, self.coco_backend, self.masks, self.score_threshold
        )
        return evaluator

    def results_writer(self, dataset: Any, out_dir: Path) -> COCOResultsWriter:
        """predictions.json in COCO results format, with the dataset's own image and category ids."""
        view = ground_truth_of(dataset).coco_ground_truth()
        return COCOResultsWriter(
            path=Path(out_dir) / "predictions.json", label_to_cat_id=view.label_to_cat_id
        )

    def predict_writer(self, out_dir: Path) -> DrawnDetectionsWriter:
        """Each image with its boxes drawn, and predictions.json."""
        return DrawnDetectionsWriter(
            out_dir=Path(out_dir), class_names=self.class_names, score_threshold=self.score_threshold
        )

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        table = Table(
            title=f"detections with score >= {self.score_threshold} (drawn in {Path(out_dir) / 'predictions'})",
            show_header=True,
            header_style="bold",
        )
        table.add_column("image")
        table.add_column("objects", justify="right")
        table.add_column("detections (score)")
        for record in records:
            found = ", ".join(f"{d['class_name']} ({d['score']:.2f})" for d in record["detections"][:8])
            more = len(record["detections"]) - 8
            table.add_row(
                Path(record["path"]).name,
                str(len(record["detections"])),
                found + (f", ... {more} more" if more > 0 else ""),
            )
        return table
