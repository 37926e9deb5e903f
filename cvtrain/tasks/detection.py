"""Object detection: lists of variable-size images, the detector's named losses, boxes back in original pixels.

Any model that keeps cvtrain's detection contract trains here (torchvision's detectors, our YOLO):
`model(images, targets)` with images a list of float [3, H, W] in 0..1 and targets `{"boxes": XYXY pixels,
"labels": int64 0-based}` returns a dict of named losses in training mode, and in eval mode `model(images)`
returns one `{"boxes", "scores", "labels"}` per image, boxes in that input image's pixels.

The evaluator follows the dataset: COCO data is scored with pycocotools on its own json (headline `map`); VOC
data with the devkit's AP (headline `voc_map`) and COCO AP on the COCO view of the same annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Group
from rich.table import Table
from torch import nn

from cvtrain.data.batch import Batch, split_bad
from cvtrain.data.coco import COCODetection, coco_api_from_dict
from cvtrain.data.voc import VOCDetection
from cvtrain.errors import ConfigError
from cvtrain.metrics.base import Evaluator
from cvtrain.metrics.coco import COCOEvaluator
from cvtrain.metrics.voc import VOCEvaluator
from cvtrain.tasks.detection_outputs import COCOResultsWriter, DrawnDetectionsWriter

Detections = list[dict[str, torch.Tensor]]


class CombinedEvaluator(Evaluator):
    """Several evaluators over the same predictions; `compute()` merges their (disjoint) metric dicts."""

    def __init__(self, *, evaluators: list[Evaluator]):
        self.evaluators = evaluators

    def reset(self) -> None:
        for evaluator in self.evaluators:
            evaluator.reset()

    def update(self, batch: Batch, predictions: Any) -> None:
        for evaluator in self.evaluators:
            evaluator.update(batch, predictions)

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, CombinedEvaluator) or len(other.evaluators) != len(self.evaluators):
            raise TypeError(f"cannot merge {type(other).__name__} into this CombinedEvaluator")
        for mine, theirs in zip(self.evaluators, other.evaluators, strict=True):
            mine.merge(theirs)

    def compute(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for evaluator in self.evaluators:
            metrics = evaluator.compute()
            clash = sorted(merged.keys() & metrics.keys())
            if clash:
                raise ValueError(f"two evaluators both report {clash}")
            merged.update(metrics)
        return merged

    def report(self) -> Group | None:
        reports = [r for r in (e.report() for e in self.evaluators) if r is not None]
        return Group(*reports) if reports else None


def voc_coco_evaluator(dataset: VOCDetection) -> COCOEvaluator:
    """COCO AP on the COCO-format view of VOC annotations (category id = 1-based class index)."""
    return COCOEvaluator(
        coco_gt=coco_api_from_dict(dataset.to_coco(), source=f"{dataset.root} (COCO view)"),
        label_to_cat_id={label: label + 1 for label in range(len(dataset.class_names))},
        image_id_map=dataset.coco_image_ids,
    )


def detection_evaluator(dataset: Any) -> tuple[Evaluator, str]:
    """The evaluator for `dataset` and its headline metric (what picks best.ckpt)."""
    if isinstance(dataset, VOCDetection):
        voc = VOCEvaluator(records=dataset.records, class_names=dataset.class_names)
        return CombinedEvaluator(evaluators=[voc, voc_coco_evaluator(dataset)]), "voc_map"
    if isinstance(dataset, COCODetection):
        return COCOEvaluator(coco_gt=dataset.coco, label_to_cat_id=dataset.label_to_cat_id), "map"
    raise ConfigError(
        f"detection evaluation needs VOC or COCO-format data, got {type(dataset).__name__}: use data=voc, "
        "data=coco or data=shapes"
    )


def results_category_ids(dataset: Any) -> dict[int, int] | None:
    """Training label -> category id of predictions.json: the file's ids (COCO), the 1-based class index (VOC)."""
    if isinstance(dataset, VOCDetection):
        return {label: label + 1 for label in range(len(dataset.class_names))}
    if isinstance(dataset, COCODetection):
        return dict(dataset.label_to_cat_id)
    return None


def to_original_pixels(
    boxes: torch.Tensor, input_size: tuple[int, int], orig_size: tuple[int, int]
) -> torch.Tensor:
    """Boxes in the pixels of a (resized) input image -> the original image's pixels."""
    (in_h, in_w), (orig_h, orig_w) = input_size, orig_size
    if (in_h, in_w) == (orig_h, orig_w):
        return boxes
    scale = boxes.new_tensor([orig_w / in_w, orig_h / in_h, orig_w / in_w, orig_h / in_h])
    return boxes * scale


class DetectionTask:
    name = "detection"
    monitor_mode = "max"

    def __init__(self, *, class_names: list[str], score_threshold: float = 0.5):
        self.class_names = list(class_names)
        self.score_threshold = score_threshold
        self.monitor = "map"  # becomes the dataset's headline metric when `evaluator(dataset)` is built

    def collate(self, samples: list[Any]) -> Batch:
        """Images stay a list (sizes differ); `meta["input_size"]` records the size the model sees, so
        `predict` can map boxes back to `meta["orig_size"]` if the transform resized."""
        good, bad = split_bad(samples)
        images, targets, metas = [], [], []
        for image, target, meta in good:
            images.append(image.as_subclass(torch.Tensor))
            metas.append({**meta, "input_size": (int(image.shape[-2]), int(image.shape[-1]))})
            if isinstance(target, dict):
                target = {"boxes": target["boxes"].as_subclass(torch.Tensor), "labels": target["labels"]}
            else:
                target = None  # `cvtrain predict` inputs have no annotation
            targets.append(target)
        return Batch(images=images, targets=targets, meta=metas, bad=bad)

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        losses = model(batch.images, batch.targets)
        if "loss" in losses:
            raise ValueError("a detection model returns its named losses; the task adds their sum as 'loss'")
        return {"loss": torch.stack([v.float() for v in losses.values()]).sum(), **losses}

    def predict(self, model: nn.Module, batch: Batch) -> Detections:
        outputs = model(batch.images)
        return [
            {
                "boxes": to_original_pixels(
                    out["boxes"].float(), meta["input_size"], tuple(meta["orig_size"])
                ),
                "scores": out["scores"].float(),
                "labels": out["labels"].long(),
            }
            for out, meta in zip(outputs, batch.meta, strict=True)
        ]

    def evaluator(self, dataset: Any) -> Evaluator:
        evaluator, self.monitor = detection_evaluator(dataset)
        return evaluator

    def prediction_sink(self, dataset: Any, out_dir: Path) -> COCOResultsWriter | DrawnDetectionsWriter:
        """`eval.save_predictions`: predictions.json in COCO results format; `cvtrain predict` (images without
        annotations): each image with its boxes drawn, and predictions.json."""
        category_ids = results_category_ids(dataset)
        if category_ids is not None:
            return COCOResultsWriter(path=Path(out_dir) / "predictions.json", label_to_cat_id=category_ids)
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
