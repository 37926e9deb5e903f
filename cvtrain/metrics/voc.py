"""Pascal VOC detection AP, exactly as the VOC devkit defines it (VOCevaldet.m, VOCap.m).

Per class: detections over all evaluated images, sorted by decreasing score (stable, so ties keep their
order); each is matched to the ground-truth box of its class with the highest overlap in its image (the first
one on ties). Overlap is the devkit's, on 1-based pixel boxes with +1 widths and heights; cvtrain's continuous
0-based boxes convert as (x0 + 1, y0 + 1, x1, y1). With overlap >= 0.5: a `difficult` box makes the detection
ignored (neither TP nor FP), an unmatched box makes it a TP, an already-matched box a FP (duplicate); below 0.5
it is a FP. Recall is over the non-difficult boxes (npos).

- `voc_map`: VOC2010+ AP, the area under the precision envelope at every recall change (VOCap.m).
- `voc07_map`: VOC2007 11-point AP, the mean over t in {0, 0.1, ..., 1} of the best precision at recall >= t.
  The thresholds are the exact tenths k/10 (py-faster-rcnn's `np.arange(0, 1.1, 0.1)` makes 0.3 into
  0.30000000000000004, which wrongly skips a recall of exactly 0.3).
- A class with no non-difficult ground truth (npos = 0) has an undefined AP: the devkit and py-faster-rcnn's
  `voc_eval.py` divide by zero there (NaN, which poisons their mean). We report NaN for that class and leave it
  out of both means. A class with ground truth but no detections has AP 0 and counts.

Images never passed to `update` do not count, so a partial evaluation scores what it saw; after a full pass the
evaluated set is the devkit's. Detections of an image seen twice (a padded distributed sampler) replace each other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.plots import PlotData, PRCurve
from cvtrain.data.annotations.records import VOCRecord
from cvtrain.errors import DataError

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ClassAP:
    name: str
    num_positives: int  # non-difficult ground-truth boxes
    num_detections: int
    ap: float  # VOC2010+ definition; NaN when num_positives == 0
    ap07: float  # VOC2007 11-point definition; NaN when num_positives == 0
    # at each detection, by decreasing score (the arrays the AP integrates; left out of == and repr)
    recall: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP (VOCap.m): area under the monotone precision envelope, summed where recall changes."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    changes = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[changes] - mrec[changes - 1]) * mpre[changes]))


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP: mean over t = 0, 0.1, ..., 1 of the highest precision at recall >= t (0 if none)."""
    ap = 0.0
    for tenth in range(11):
        reached = precision[recall >= tenth / 10]
        ap += (float(reached.max()) if reached.size else 0.0) / 11
    return ap


def devkit_overlaps(detections: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """Overlap [D, G] of 1-based pixel boxes as VOCevaldet.m computes it; -inf where the boxes do not intersect."""
    det = detections[:, None, :]
    gt = ground_truth[None, :, :]
    iw = np.minimum(det[..., 2], gt[..., 2]) - np.maximum(det[..., 0], gt[..., 0]) + 1
    ih = np.minimum(det[..., 3], gt[..., 3]) - np.maximum(det[..., 1], gt[..., 1]) + 1
    intersection = iw * ih
    union = (
        (det[..., 2] - det[..., 0] + 1) * (det[..., 3] - det[..., 1] + 1)
        + (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1)
        - intersection
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = intersection / union
    return np.where((iw > 0) & (ih > 0), overlap, -np.inf)


def to_devkit_boxes(boxes: np.ndarray) -> np.ndarray:
    """Continuous 0-based XYXY -> the devkit's 1-based pixel corners."""
    return boxes + np.array([1.0, 1.0, 0.0, 0.0])


class VOCEvaluator(Evaluator):
    """`voc_map` and `voc07_map` at IoU >= 0.5 over the images seen by `update`; see the module docstring."""

    def __init__(self, *, records: Sequence[VOCRecord], class_names: Sequence[str]):
        self.records = {record.image_id: record for record in records}
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        # image id -> (boxes float64 [N, 4] 0-based XYXY, scores float64 [N], labels int64 [N])
        self._detections: dict[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._per_class: list[ClassAP] | None = None

    def add(self, image_id: Hashable, boxes: Any, scores: Any, labels: Any) -> None:
        """Record one image's detections (boxes XYXY in original pixels, contiguous 0-based labels)."""
        if image_id not in self.records:
            raise DataError(
                f"image id {image_id!r} is not one of the {len(self.records)} evaluated VOC images"
            )
        boxes, scores, labels = (_numpy(v) for v in (boxes, scores, labels))
        boxes = boxes.astype(np.float64).reshape(-1, 4)
        labels = labels.astype(np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels of image {image_id!r} must be in 0..{len(self.class_names) - 1}: {labels}"
            )
        self._detections[image_id] = (boxes, scores.astype(np.float64).reshape(-1), labels)
        self._per_class = None

    def update(self, batch: Batch, predictions: Sequence[dict[str, torch.Tensor]]) -> None:
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            self.add(meta["image_id"], prediction["boxes"], prediction["scores"], prediction["labels"])

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, VOCEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into VOCEvaluator")
        self._detections.update(other._detections)
        self._per_class = None

    def compute(self) -> dict[str, float]:
        per_class = self._evaluate()
        scored = [c for c in per_class if c.num_positives > 0]
        if not scored:
            log.warning("VOC AP: no evaluated image has a non-difficult object; reporting 0")
            return {"voc_map": 0.0, "voc07_map": 0.0}
        return {
            "voc_map": float(np.mean([c.ap for c in scored])),
            "voc07_map": float(np.mean([c.ap07 for c in scored])),
        }

    def per_class_ap(self) -> dict[str, float]:
        """VOC2010+ AP per class name (NaN for a class without ground truth in the evaluated images)."""
        return {c.name: c.ap for c in self._evaluate()}

    def plot_data(self) -> PlotData:
        """Each class's precision-recall curve (the arrays its AP integrates) with its VOC2010+ AP."""
        curves = [PRCurve(c.name, c.recall, c.precision, c.ap) for c in self._evaluate()]
        return PlotData(pr_curves=curves, pr_title="precision-recall at IoU 0.5 (VOC AP, difficult ignored)")

    def report(self) -> Table:
        table = Table(title="VOC AP @ IoU 0.5 (difficult ignored)")
        for column in ("class", "GT", "detections", "AP", "AP (VOC07 11-pt)"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for c in self._evaluate():
            ap, ap07 = ("-", "-") if c.num_positives == 0 else (f"{c.ap:.4f}", f"{c.ap07:.4f}")
            table.add_row(c.name, str(c.num_positives), str(c.num_detections), ap, ap07)
        means = self.compute()
        table.add_section()
        table.add_row("mean", "", "", f"{means['voc_map']:.4f}", f"{means['voc07_map']:.4f}")
        return table

    def _evaluate(self) -> list[ClassAP]:
        if self._per_class is None:
            self._per_class = self._match()
        return self._per_class

    def _match(self) -> list[ClassAP]:
        """Match detections to ground truth class by class; returns one `ClassAP` per class."""
        # Per detection: its best same-class overlap in its image and that box's index in the flat GT arrays.
        # Which box is best does not depend on the matching state, so only the TP/FP pass is sequential.
        det_scores, det_labels, best_overlap, best_gt = [], [], [], []
        gt_difficult, gt_labels = [], []
        gt_offset = 0
        # Record order, then each image's own order: the order of a devkit results file, so ties sort alike.
        for image_id, record in self.records.items():
            if image_id not in self._detections:
                continue
            boxes, scores, labels = self._detections[image_id]
            gt_difficult.append(record.difficult)
            gt_labels.append(record.labels)
            det_scores.append(scores)
            det_labels.append(labels)
            if record.boxes.shape[0] == 0:
                best_overlap.append(np.full(labels.size, -np.inf))
                best_gt.append(np.zeros(labels.size, dtype=np.int64))
                continue
            overlaps = devkit_overlaps(to_devkit_boxes(boxes), to_devkit_boxes(record.boxes))
            overlaps[
                labels[:, None] != record.labels[None, :]
            ] = -np.inf  # only boxes of the detection's class
            best_overlap.append(overlaps.max(axis=1))
            best_gt.append(
                overlaps.argmax(axis=1) + gt_offset
            )  # argmax: the first box on ties, as the devkit
            gt_offset += record.boxes.shape[0]
        difficult, gt_label, scores, labels, overlap, gt_index = (
            np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
            for parts, dtype in (
                (gt_difficult, bool),
                (gt_labels, np.int64),
                (det_scores, np.float64),
                (det_labels, np.int64),
                (best_overlap, np.float64),
                (best_gt, np.int64),
            )
        )
        results = []
        for label, name in enumerate(self.class_names):
            num_positives = int(np.sum((gt_label == label) & ~difficult))
            mine = labels == label
            if num_positives == 0:
                results.append(ClassAP(name, 0, int(mine.sum()), math.nan, math.nan))
                continue
            tp, fp = _assign(scores[mine], overlap[mine], gt_index[mine], difficult)
            tp, fp = np.cumsum(tp), np.cumsum(fp)
            recall = tp / num_positives
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap, ap07 = voc_ap(recall, precision), voc07_ap(recall, precision)
            results.append(ClassAP(name, num_positives, int(mine.sum()), ap, ap07, recall, precision))
        return results


def _assign(
    scores: np.ndarray, best_overlap: np.ndarray, best_gt: np.ndarray, difficult: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TP / FP flags of detections in decreasing score order (ignored ones are 0 in both)."""
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(order.size)
    fp = np.zeros(order.size)
    matched = np.zeros(difficult.size, dtype=bool)
    for rank, d in enumerate(order):
        if best_overlap[d] >= IOU_THRESHOLD:
            gt = best_gt[d]
            if difficult[gt]:
                continue
            if matched[gt]:
                fp[rank] = 1  # a duplicate detection of an object already found
            else:
                tp[rank] = 1
                matched[gt] = True
        else:
            fp[rank] = 1
    return tp, fp


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
