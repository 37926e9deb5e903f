"""YOLOv1 (Redmon et al., 2016) grid coding and its sum-squared loss.

Layout of one cell of the prediction [B, S, S, 5·boxes + C]: `boxes` groups of (x, y, √w, √h, confidence), then
C class probabilities. x, y are the box centre relative to the cell (0..1), w, h relative to the image; the
network predicts √w, √h so the loss weighs an error on a small box more than the same error on a large one.
A target cell is [has_object, x, y, w, h, one-hot class (C)].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BOX_FIELDS = 5  # x, y, sqrt_w, sqrt_h, confidence


def cell_boxes_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """[..., S, S, K, 4] boxes as (x, y) relative to their cell and (w, h) relative to the image → XYXY in 0..1.

    Axis -4 is the grid row (y), axis -3 the grid column (x), axis -2 the K boxes of a cell.
    """
    grid = xywh.shape[-3]
    index = torch.arange(grid, device=xywh.device, dtype=xywh.dtype)
    cx = (index.view(1, grid, 1) + xywh[..., 0]) / grid
    cy = (index.view(grid, 1, 1) + xywh[..., 1]) / grid
    half_w, half_h = xywh[..., 2] / 2, xywh[..., 3] / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def paired_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of corresponding XYXY boxes [..., 4] (torchvision's box_iou is all-pairs; here pairs are given)."""
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(dim=-1)
    return inter / (area1 + area2 - inter + eps)


def encode_targets(
    boxes: torch.Tensor, labels: torch.Tensor, *, grid_size: int, num_classes: int
) -> torch.Tensor:
    """Boxes XYXY in 0..1 [N, 4] and labels [N] → target grid [S, S, 5 + C].

    A box belongs to the cell holding its centre. A cell holds one object, so when several centres share a cell
    the largest box is kept (the others cannot be represented by this model: a known YOLOv1 limit).
    """
    target = torch.zeros(grid_size, grid_size, BOX_FIELDS + num_classes, device=boxes.device)
    if len(boxes) == 0:
        return target
    boxes = boxes.float().clamp(0, 1)
    wh = boxes[:, 2:] - boxes[:, :2]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    cell = (centre * grid_size).floor().clamp(max=grid_size - 1)
    offset = centre * grid_size - cell
    for i in (
        wh.prod(dim=1).argsort().tolist()
    ):  # smallest first, so the largest box in a cell is written last
        col, row = int(cell[i, 0]), int(cell[i, 1])
        target[row, col] = 0
        target[row, col, 0] = 1
        target[row, col, 1:3] = offset[i]
        target[row, col, 3:5] = wh[i]
        target[row, col, BOX_FIELDS + int(labels[i])] = 1
    return target


def decode_targets(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of `encode_targets`: target grid [S, S, 5 + C] → boxes XYXY 0..1 [N, 4], labels [N]."""
    has_object = target[..., 0] > 0
    boxes = cell_boxes_to_xyxy(target[..., None, 1:5])[..., 0, :][has_object]
    labels = target[..., BOX_FIELDS:].argmax(dim=-1)[has_object]
    return boxes, labels


def decode_predictions(pred: torch.Tensor, *, boxes_per_cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's prediction [S, S, 5·boxes + C] → boxes XYXY 0..1 [S·S·boxes, 4] and class-specific
    scores [S·S·boxes, C] = confidence × P(class | object), as in the paper's test-time scoring."""
    box_fields = pred[..., : BOX_FIELDS * boxes_per_cell].unflatten(-1, (boxes_per_cell, BOX_FIELDS))
    class_probs = pred[..., BOX_FIELDS * boxes_per_cell :]
    xywh = torch.cat([box_fields[..., :2], box_fields[..., 2:4].square()], dim=-1)
    boxes = cell_boxes_to_xyxy(xywh).reshape(-1, 4)
    scores = box_fields[..., 4:5] * class_probs[..., None, :]
    return boxes, scores.reshape(-1, class_probs.shape[-1])


class YOLOv1Loss:
    """The original sum-squared loss; returns {"loss_coord", "loss_obj", "loss_noobj", "loss_cls"}, each summed
    over the grid and averaged over the batch, λ weights applied.

    In a cell with an object, the predictor whose box has the highest IoU with the GT is responsible: it gets the
    coordinate loss and learns confidence = that IoU. Every other predictor learns confidence 0 (weight λ_noobj).
    """

    def __init__(self, *, boxes_per_cell: int, lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> None:
        self.boxes_per_cell = boxes_per_cell
        self.lambda_coord = lambda_coord
        self.lambda_noobj = lambda_noobj

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """pred [B, S, S, 5·boxes + C] (activated outputs), target [B, S, S, 5 + C] from `encode_targets`."""
        pred, batch = pred.float(), pred.shape[0]
        boxes = pred[..., : BOX_FIELDS * self.boxes_per_cell].unflatten(-1, (self.boxes_per_cell, BOX_FIELDS))
        has_object = target[..., 0] > 0  # [B, S, S]
        gt_xywh = target[..., None, 1:5]  # [B, S, S, 1, 4]: broadcast over the predictors
        with torch.no_grad():
            pred_xywh = torch.cat([boxes[..., :2], boxes[..., 2:4].square()], dim=-1)
            ious = paired_iou(cell_boxes_to_xyxy(pred_xywh), cell_boxes_to_xyxy(gt_xywh))  # [B, S, S, k]
        responsible = F.one_hot(ious.argmax(dim=-1), self.boxes_per_cell).bool() & has_object[..., None]

        gt_fields = torch.cat([gt_xywh[..., :2], gt_xywh[..., 2:4].sqrt()], dim=-1)
        coord_error = (boxes[..., :4] - gt_fields).square().sum(dim=-1)
        confidence = boxes[..., 4]
        class_error = (
            (pred[..., BOX_FIELDS * self.boxes_per_cell :] - target[..., BOX_FIELDS:]).square().sum(-1)
        )
        return {
            "loss_coord": self.lambda_coord * coord_error[responsible].sum() / batch,
            "loss_obj": (confidence - ious)[responsible].square().sum() / batch,
            "loss_noobj": self.lambda_noobj * confidence[~responsible].square().sum() / batch,
            "loss_cls": class_error[has_object].sum() / batch,
        }
