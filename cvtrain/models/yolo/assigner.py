"""Task-aligned assignment (TOOD, as used by YOLOv8): which anchors learn which ground-truth box.

For every GT, the candidate anchors are those whose centre lies inside the box. Each candidate gets the
alignment metric t = s^α · IoU^β (s: the predicted score of the GT's class, IoU: predicted box vs GT), the
top-k candidates by t become positives, and an anchor claimed by several GTs keeps the one it overlaps most.
Positives are trained towards a soft class target: t rescaled so that each GT's best anchor reaches that GT's
best IoU, which ties the classification score to localisation quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou


@dataclass
class Assignment:
    fg_mask: torch.Tensor  # bool [B, A]: anchor is a positive
    gt_index: torch.Tensor  # long [B, A]: index of the assigned GT in the padded list (0 for background)
    target_labels: torch.Tensor  # long [B, A] (meaningful where fg_mask)
    target_boxes: torch.Tensor  # [B, A, 4] XYXY pixels (meaningful where fg_mask)
    target_scores: torch.Tensor  # [B, A, C] soft one-hot targets, zero for background


def points_inside_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """bool [B, M, A]: anchor point a [A, 2] lies strictly inside box m of boxes [B, M, 4]."""
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (boxes[..., i, None] for i in range(4))
    margins = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=-1)
    return margins.amin(dim=-1) > eps


class TaskAlignedAssigner:
    def __init__(self, *, topk: int = 10, alpha: float = 0.5, beta: float = 6.0) -> None:
        self.topk = topk
        self.alpha = alpha
        self.beta = beta

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
    ) -> Assignment:
        """pred_scores [B, A, C] probabilities, pred_boxes [B, A, 4], points [A, 2]; GTs padded to M per image:
        gt_labels [B, M], gt_boxes [B, M, 4], gt_mask [B, M] (False for padding entries, which get nothing)."""
        _, num_anchors, num_classes = pred_scores.shape
        if gt_boxes.shape[1] == 0 or not gt_mask.any():
            return self._background(pred_scores, gt_labels.device)

        candidates = points_inside_boxes(points, gt_boxes) & gt_mask[..., None]  # [B, M, A]
        ious = torch.stack([box_iou(g, p) for g, p in zip(gt_boxes, pred_boxes, strict=True)])
        ious = ious.nan_to_num_(0.0).clamp_(min=0)  # 0/0 when a zero-area prediction meets a padding GT
        labels = gt_labels.clamp(0, num_classes - 1)  # padding entries may hold any label
        scores = pred_scores.gather(2, labels[:, None, :].expand(-1, num_anchors, -1)).transpose(1, 2)
        align = scores.pow(self.alpha) * ious.pow(self.beta) * candidates

        # Top-k per GT; non-candidates rank below every candidate, then are removed by the mask.
        k = min(self.topk, num_anchors)
        top = align.masked_fill(~candidates, -1.0).topk(k, dim=-1).indices
        positive = torch.zeros_like(candidates).scatter_(-1, top, True) & candidates

        # One GT per anchor: among the GTs that claim an anchor, the one with the highest IoU wins.
        claimed_twice = positive.sum(dim=1) > 1  # [B, A]
        if claimed_twice.any():
            best = ious.masked_fill(~positive, -1.0).argmax(dim=1)  # [B, A]
            best_only = F.one_hot(best, gt_boxes.shape[1]).transpose(1, 2).bool()
            positive = torch.where(claimed_twice[:, None, :], positive & best_only, positive)

        fg_mask = positive.any(dim=1)
        gt_index = positive.to(torch.uint8).argmax(dim=1)
        target_labels = labels.gather(1, gt_index)
        target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))

        align = align * positive
        best_align = align.amax(dim=-1, keepdim=True)  # [B, M, 1]
        best_iou = (ious * positive).amax(dim=-1, keepdim=True)
        # A relative guard, not `+ eps`: with β = 6 alignments of 1e-6 are common and an eps would bias them.
        best_align = best_align.clamp(min=torch.finfo(align.dtype).tiny)
        quality = (align * best_iou / best_align).amax(dim=1)  # [B, A]: each anchor has at most one GT
        target_scores = F.one_hot(target_labels, num_classes).to(pred_scores.dtype)
        target_scores = target_scores * (quality * fg_mask)[..., None]
        return Assignment(fg_mask, gt_index, target_labels, target_boxes, target_scores)

    @staticmethod
    def _background(pred_scores: torch.Tensor, device: torch.device) -> Assignment:
        batch, num_anchors, _ = pred_scores.shape
        return Assignment(
            fg_mask=torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
            gt_index=torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
            target_labels=torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
            target_boxes=torch.zeros(batch, num_anchors, 4, dtype=pred_scores.dtype, device=device),
            target_scores=torch.zeros_like(pred_scores),
        )
