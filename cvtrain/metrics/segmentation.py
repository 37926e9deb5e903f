"""Semantic segmentation metrics from a confusion matrix accumulated over the whole split.

With n_ij = pixels of ground-truth class i predicted as j, t_i = sum_j n_ij (ground-truth pixels of i) and
IoU_i = n_ii / (t_i + sum_j n_ji - n_ii) (Long et al., "Fully Convolutional Networks", section 5):

- `miou`:           mean IoU_i over the classes with a non-zero union (present in ground truth or prediction);
- `pixel_acc`:      sum_i n_ii / sum_i t_i;
- `mean_class_acc`: mean of n_ii / t_i over the classes present in the ground truth;
- `fw_iou`:         sum_i t_i IoU_i / sum_i t_i (frequency-weighted IoU).

Pixels whose target is `ignore_index` (VOC's void border) count nowhere. Every metric is NaN when no pixel
was counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.plots import ConfusionData, PlotData


class SegmentationEvaluator(Evaluator):
    """Confusion matrix [num_classes, num_classes] (rows = ground truth, cols = prediction).

    The matrix lives on the device of the first predictions it sees, so accumulation needs no host copy.
    """

    def __init__(self, *, num_classes: int, class_names: Sequence[str], ignore_index: int = 255) -> None:
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.confusion = torch.zeros_like(self.confusion)

    def update(self, batch: Batch, predictions: Any) -> None:
        """`batch.targets` and `predictions`: label maps [B, H, W], or lists of [H, W] (sizes may differ)."""
        targets, preds = _flatten_pairs(batch.targets, predictions)
        if self.confusion.device != preds.device:
            self.confusion = self.confusion.to(preds.device)
        targets = targets.to(preds.device)
        keep = targets != self.ignore_index
        targets, preds = targets[keep].long(), preds[keep].long()
        n = self.num_classes
        out_of_range = (targets < 0) | (targets >= n) | (preds < 0) | (preds >= n)
        if bool(out_of_range.any()):  # one host sync per batch; a silent drop would hide a wrong num_classes
            raise ValueError(
                f"class indices of targets and predictions must lie in 0..{n - 1} "
                f"(targets may also be {self.ignore_index} = ignore)"
            )
        self.confusion += torch.bincount(targets * n + preds, minlength=n * n).reshape(n, n)

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, SegmentationEvaluator) or other.num_classes != self.num_classes:
            raise TypeError("can only merge a SegmentationEvaluator with the same number of classes")
        self.confusion += other.confusion.to(self.confusion.device)

    def _iou(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-class IoU, union, ground-truth pixels), float64 on the CPU; IoU is NaN where the union is 0."""
        hist = self.confusion.double().cpu()
        true_positive = hist.diag()
        ground_truth = hist.sum(1)
        union = ground_truth + hist.sum(0) - true_positive
        iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, math.nan))
        return iou, union, ground_truth

    def compute(self) -> dict[str, float]:
        iou, union, ground_truth = self._iou()
        total = float(ground_truth.sum())
        if total == 0:
            return {name: math.nan for name in ("miou", "pixel_acc", "mean_class_acc", "fw_iou")}
        true_positive = self.confusion.double().cpu().diag()
        present = ground_truth > 0
        return {
            "miou": float(iou[union > 0].mean()),
            "pixel_acc": float(true_positive.sum() / total),
            "mean_class_acc": float((true_positive[present] / ground_truth[present]).mean()),
            "fw_iou": float((ground_truth[present] * iou[present]).sum() / total),
        }

    def per_class_iou(self) -> dict[str, float]:
        """IoU by class name; NaN for a class absent from both ground truth and predictions."""
        iou, _, _ = self._iou()
        return {name: float(v) for name, v in zip(self.class_names, iou.tolist(), strict=True)}

    def plot_data(self) -> PlotData:
        """The pixel confusion matrix (rows: true class; void pixels left out)."""
        counts = self.confusion.cpu().numpy()
        return PlotData(
            confusion=ConfusionData(counts=counts, names=self.class_names, title="pixel confusion")
        )

    def report(self) -> Table:
        iou, _, ground_truth = self._iou()
        true_positive = self.confusion.double().cpu().diag()
        total = float(ground_truth.sum())
        metrics = self.compute()
        table = Table(title="Per-class IoU", caption=f"mIoU {100 * metrics['miou']:.2f}")
        for column in ("#", "class", "IoU %", "acc %", "GT pixels %"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for index, name in enumerate(self.class_names):
            gt = float(ground_truth[index])
            table.add_row(
                str(index),
                name,
                "—" if math.isnan(iou[index]) else f"{100 * float(iou[index]):.2f}",
                "—" if gt == 0 else f"{100 * float(true_positive[index]) / gt:.2f}",
                "—" if total == 0 else f"{100 * gt / total:.2f}",
            )
        return table


def _flatten_pairs(targets: Any, predictions: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as flat 1-D tensors, after checking that each prediction has its target's shape."""
    if isinstance(targets, torch.Tensor) and isinstance(predictions, torch.Tensor):
        pairs = [(targets, predictions)]
    else:
        targets, predictions = list(targets), list(predictions)
        if len(targets) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        pairs = list(zip(targets, predictions, strict=True))
    for target, prediction in pairs:
        if target.shape != prediction.shape:
            raise ValueError(
                f"prediction shape {tuple(prediction.shape)} differs from target shape {tuple(target.shape)}: "
                "predictions must be label maps (argmax over classes) at the target's resolution"
            )
    device = pairs[0][1].device if pairs else torch.device("cpu")
    flat_targets = (
        torch.cat([t.reshape(-1).to(device) for t, _ in pairs]) if pairs else torch.zeros(0, dtype=torch.long)
    )
    flat_preds = torch.cat([p.reshape(-1) for _, p in pairs]) if pairs else torch.zeros(0, dtype=torch.long)
    return flat_targets, flat_preds
