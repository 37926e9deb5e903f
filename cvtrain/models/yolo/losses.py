"""Losses of the anchor-free YOLO: classification (BCE or varifocal), IoU-family box loss (CIoU or GIoU via
torchvision.ops) and the distribution focal loss on the DFL bins.

All three are summed over the batch and divided by the sum of the soft class targets, so their scale does not
depend on the number of objects or of anchors (the YOLOv8 normalisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, generalized_box_iou_loss

from cvtrain.models.yolo.assigner import Assignment, TaskAlignedAssigner
from cvtrain.models.yolo.coder import boxes_to_distances, decode_boxes

BOX_LOSSES = {"ciou": complete_box_iou_loss, "giou": generalized_box_iou_loss}
CLS_LOSSES = ("bce", "varifocal")


def varifocal_loss(
    logits: torch.Tensor, target_scores: torch.Tensor, *, alpha: float = 0.75, gamma: float = 2.0
) -> torch.Tensor:
    """Elementwise varifocal loss (Zhang et al., VarifocalNet): BCE towards the soft target q, weighted by q on
    positives (q > 0) and by α·p^γ on negatives, so easy negatives fade but positives are not down-weighted."""
    prob = logits.sigmoid().detach()
    weight = torch.where(target_scores > 0, target_scores, alpha * prob.pow(gamma))
    return F.binary_cross_entropy_with_logits(logits, target_scores, reduction="none") * weight


def distribution_focal_loss(bin_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL (Li et al., Generalized Focal Loss): for a continuous target t between bins ⌊t⌋ and ⌊t⌋+1, cross
    entropy towards both, weighted by closeness, so the bin distribution concentrates around t.

    bin_logits [..., reg_max], target [...] in bin units within [0, reg_max - 1) → loss [...].
    """
    left = target.floor().long()
    right = left + 1
    weight_left = right.to(target.dtype) - target
    weight_right = 1.0 - weight_left
    log_probs = bin_logits.log_softmax(dim=-1)
    return -(
        log_probs.gather(-1, left[..., None]).squeeze(-1) * weight_left
        + log_probs.gather(-1, right[..., None]).squeeze(-1) * weight_right
    )


class YOLOLoss:
    """Assigns targets and returns the weighted loss terms {"loss_cls", "loss_box", ["loss_dfl"]}."""

    def __init__(
        self,
        *,
        num_classes: int,
        reg_max: int,
        assigner: TaskAlignedAssigner,
        cls_loss: str = "bce",
        box_loss: str = "ciou",
        cls_weight: float = 0.5,
        box_weight: float = 7.5,
        dfl_weight: float = 1.5,
    ) -> None:
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.assigner = assigner
        self.cls_loss = cls_loss
        self.box_loss = BOX_LOSSES[box_loss]
        self.cls_weight = cls_weight
        self.box_weight = box_weight
        self.dfl_weight = dfl_weight

    def __call__(
        self,
        cls_logits: torch.Tensor,
        box_outputs: torch.Tensor,
        points: torch.Tensor,
        strides: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """cls_logits [B, A, C], box_outputs [B, A, 4·reg_max], points [A, 2], strides [A]; padded GTs as in
        `TaskAlignedAssigner`. Computed in float32 even under autocast."""
        cls_logits, box_outputs = cls_logits.float(), box_outputs.float()
        pred_boxes = decode_boxes(box_outputs, points, strides, self.reg_max)
        assigned = self.assigner(
            cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes.float(), gt_mask
        )
        normaliser = assigned.target_scores.sum().clamp(min=1.0)

        if self.cls_loss == "varifocal":
            cls_terms = varifocal_loss(cls_logits, assigned.target_scores)
        else:
            cls_terms = F.binary_cross_entropy_with_logits(
                cls_logits, assigned.target_scores, reduction="none"
            )
        losses = {"loss_cls": self.cls_weight * cls_terms.sum() / normaliser}
        losses.update(self._box_losses(box_outputs, pred_boxes, points, strides, assigned, normaliser))
        return losses

    def _box_losses(
        self,
        box_outputs: torch.Tensor,
        pred_boxes: torch.Tensor,
        points: torch.Tensor,
        strides: torch.Tensor,
        assigned: Assignment,
        normaliser: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        fg = assigned.fg_mask
        names = ["loss_box"] + (["loss_dfl"] if self.reg_max > 1 else [])
        if not fg.any():
            # Keep the graph connected (DDP expects every parameter to receive a gradient).
            return {name: box_outputs.sum() * 0.0 for name in names}
        weight = assigned.target_scores.sum(dim=-1)[fg]
        iou_terms = self.box_loss(pred_boxes[fg], assigned.target_boxes[fg], reduction="none")
        losses = {"loss_box": self.box_weight * (iou_terms * weight).sum() / normaliser}
        if self.reg_max > 1:
            anchor_idx = fg.nonzero()[:, 1]
            target = (
                boxes_to_distances(points[anchor_idx], assigned.target_boxes[fg]) / strides[anchor_idx, None]
            )
            target = target.clamp(0, self.reg_max - 1 - 0.01)
            bins = box_outputs[fg].unflatten(-1, (4, self.reg_max))
            dfl_terms = distribution_focal_loss(bins, target).mean(dim=-1)
            losses["loss_dfl"] = self.dfl_weight * (dfl_terms * weight).sum() / normaliser
        return losses
