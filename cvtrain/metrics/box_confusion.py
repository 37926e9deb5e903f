"""A detector's confusion matrix: detections matched to ground-truth boxes at IoU >= 0.5 whatever their classes,
with a background row and column, the way Ultralytics draws it.

Per image, detections with score >= `score_threshold` are matched one-to-one to the non-crowd ground-truth boxes,
greedily by decreasing IoU (class-agnostic, so a box found with the wrong class lands off the diagonal). A matched
pair counts at (true class, detected class); a box left unmatched at (true class, background): missed; a
detection left unmatched at (background, detected class): a false positive, unless it covers a crowd region
(VOC's `difficult`, COCO's `iscrowd`) by intersection over its own area >= 0.5, as COCOeval ignores those.

The ground truth is the dataset's COCO view (`DetectionGroundTruth.coco_ground_truth()`), in original pixels like
the predictions. It computes no metric: it only feeds `confusion_matrix.png`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_iou

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.plots import ConfusionData, PlotData

IOU_THRESHOLD = 0.5


def _ioa(detections: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Intersection over the detection's area [D, R] (COCOeval's overlap with a crowd region)."""
    top_left = torch.maximum(detections[:, None, :2], regions[None, :, :2])
    bottom_right = torch.minimum(detections[:, None, 2:], regions[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area = (detections[:, 2:] - detections[:, :2]).clamp(min=0).prod(dim=1)
    return intersection / area.clamp(min=1e-12)[:, None]


def match_counts(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    det_boxes: torch.Tensor,
    det_labels: torch.Tensor,
    num_classes: int,
    crowd_boxes: torch.Tensor | None = None,
) -> np.ndarray:
    """The [C + 1, C + 1] counts of one image (see the module doc); index C is background."""
    counts = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    gt_l, det_l = gt_labels.tolist(), det_labels.tolist()
    gt_used, det_used = [False] * len(gt_l), [False] * len(det_l)
    if gt_l and det_l:
        iou = box_iou(gt_boxes.double(), det_boxes.double())
        g_index, d_index = torch.nonzero(iou >= IOU_THRESHOLD, as_tuple=True)
        order = torch.argsort(iou[g_index, d_index], descending=True, stable=True)
        for g, d in zip(g_index[order].tolist(), d_index[order].tolist(), strict=True):
            if not gt_used[g] and not det_used[d]:
                gt_used[g] = det_used[d] = True
                counts[gt_l[g], det_l[d]] += 1
    for g, used in enumerate(gt_used):
        if not used:
            counts[gt_l[g], num_classes] += 1
    in_crowd = [False] * len(det_l)
    if crowd_boxes is not None and len(crowd_boxes) and det_l:
        in_crowd = (_ioa(det_boxes.double(), crowd_boxes.double()) >= IOU_THRESHOLD).any(dim=1).tolist()
    for d, used in enumerate(det_used):
        if not used and not in_crowd[d]:
            counts[num_classes, det_l[d]] += 1
    return counts


class BoxConfusionEvaluator(Evaluator):
    """Accumulates `match_counts` over the evaluated images; see the module doc."""

    def __init__(
        self,
        *,
        coco_gt: Any,
        label_to_cat_id: Mapping[int, int],
        class_names: Sequence[str],
        score_threshold: float,
        image_id_map: Mapping[Hashable, int] | None = None,
    ):
        self.coco_gt = coco_gt
        self.cat_to_label = {int(cat): int(label) for label, cat in label_to_cat_id.items()}
        self.class_names = list(class_names)
        self.score_threshold = score_threshold
        self.image_id_map = dict(image_id_map) if image_id_map is not None else None
        self.reset()

    def reset(self) -> None:
        n = len(self.class_names) + 1
        self.counts = np.zeros((n, n), dtype=np.int64)

    def _truth(self, image_id: Hashable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(boxes XYXY, labels) of the image's non-crowd objects, and its crowd boxes."""
        coco_id = image_id if self.image_id_map is None else self.image_id_map[image_id]
        anns = self.coco_gt.loadAnns(self.coco_gt.getAnnIds(imgIds=[coco_id]))
        anns = [a for a in anns if int(a["category_id"]) in self.cat_to_label]
        xyxy = torch.tensor([a["bbox"] for a in anns], dtype=torch.float64).reshape(-1, 4)
        xyxy[:, 2:] += xyxy[:, :2]
        crowd = torch.tensor([bool(a.get("iscrowd", 0)) for a in anns], dtype=torch.bool)
        labels = torch.tensor([self.cat_to_label[int(a["category_id"])] for a in anns], dtype=torch.int64)
        return xyxy[~crowd], labels[~crowd], xyxy[crowd]

    def update(self, batch: Batch, predictions: Sequence[dict[str, torch.Tensor]]) -> None:
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            keep = prediction["scores"] >= self.score_threshold
            boxes, labels, crowd = self._truth(meta["image_id"])
            self.counts += match_counts(
                boxes,
                labels,
                prediction["boxes"][keep].detach().cpu(),
                prediction["labels"][keep].detach().cpu(),
                len(self.class_names),
                crowd,
            )

    def __getstate__(self) -> dict[str, Any]:
        """What another rank needs to merge and plot: the counts, not a copy of the ground truth (the COCO
        evaluator already sends one)."""
        return {**self.__dict__, "coco_gt": None}

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, BoxConfusionEvaluator) or other.counts.shape != self.counts.shape:
            raise TypeError(f"cannot merge {type(other).__name__} into BoxConfusionEvaluator")
        self.counts += other.counts

    def compute(self) -> dict[str, float]:
        return {}

    def plot_data(self) -> PlotData:
        title = f"boxes matched at IoU {IOU_THRESHOLD}, score >= {self.score_threshold}"
        return PlotData(
            confusion=ConfusionData(
                counts=self.counts.copy(), names=[*self.class_names, "background"], title=title
            )
        )
