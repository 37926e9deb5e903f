"""`model=yolo`: a modern anchor-free YOLO (CSP backbone, FPN+PAN neck, decoupled head, task-aligned assignment).

Follows the detection model contract shared with the torchvision detectors:
`forward(images, targets=None)` → a dict of weighted losses in training mode, a list of
{"boxes", "scores", "labels"} per image in eval mode. Images are float 0..1 and are NOT normalised (as in the
YOLO reference models: the first BatchNorm adapts to the input range). Differently sized images are padded at the
bottom/right to a common multiple of 32; detections come back in each image's own pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.assigner import TaskAlignedAssigner
from cvtrain.models.yolo.backbone import CSPBackbone, yolo_scale
from cvtrain.models.yolo.coder import anchor_points, decode_boxes
from cvtrain.models.yolo.head import DecoupledHead
from cvtrain.models.yolo.inputs import check_images, pad_images, pad_targets
from cvtrain.models.yolo.losses import BOX_LOSSES, CLS_LOSSES, YOLOLoss
from cvtrain.models.yolo.neck import PANNeck
from cvtrain.models.yolo.nms import select_detections

Target = dict[str, torch.Tensor]


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"model.{key}={value!r} is not supported; choose one of {', '.join(choices)}.")


def check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"model.{key}={value} is out of range; it must lie in [{low}, {high}].")


class YOLO(nn.Module):
    strides = (8, 16, 32)

    def __init__(
        self,
        *,
        num_classes: int,
        size: str = "n",
        reg_max: int = 16,
        cls_loss: str = "bce",
        box_loss: str = "ciou",
        cls_weight: float = 0.5,
        box_weight: float = 7.5,
        dfl_weight: float = 1.5,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        prior_prob: float = 0.01,
        conf_threshold: float = 0.001,
        iou_threshold: float = 0.7,
        max_det: int = 300,
    ) -> None:
        super().__init__()
        check_range("num_classes", num_classes, 1, float("inf"))
        check_range("reg_max", reg_max, 1, 64)
        check_choice("cls_loss", cls_loss, CLS_LOSSES)
        check_choice("box_loss", box_loss, tuple(BOX_LOSSES))
        check_range("topk", topk, 1, float("inf"))
        check_range("prior_prob", prior_prob, 1e-6, 1 - 1e-6)
        check_range("conf_threshold", conf_threshold, 0.0, 1.0)
        check_range("iou_threshold", iou_threshold, 0.0, 1.0)
        check_range("max_det", max_det, 1, float("inf"))
        scale = yolo_scale(size)
        self.num_classes = num_classes
        self.size = size
        self.reg_max = reg_max
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_det = max_det
        self.backbone = CSPBackbone(scale=scale)
        self.neck = PANNeck(channels=self.backbone.out_channels, scale=scale)
        self.head = DecoupledHead(
            channels=self.neck.out_channels, num_classes=num_classes, reg_max=reg_max, prior_prob=prior_prob
        )
        self.criterion = YOLOLoss(
            num_classes=num_classes,
            reg_max=reg_max,
            assigner=TaskAlignedAssigner(topk=topk, alpha=alpha, beta=beta),
            cls_loss=cls_loss,
            box_loss=box_loss,
            cls_weight=cls_weight,
            box_weight=box_weight,
            dfl_weight=dfl_weight,
        )

    def raw_outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """Head outputs per level for a batch [B, 3, H, W] (H, W multiples of 32): [B, 4·reg_max + C, H/s, W/s]."""
        return self.head(self.neck(self.backbone(batch)))

    def flatten_outputs(
        self, levels: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-level outputs → cls logits [B, A, C], box outputs [B, A, 4·reg_max], anchor points, strides."""
        flat = torch.cat([level.flatten(2) for level in levels], dim=2).transpose(1, 2)
        box_outputs, cls_logits = flat.split([4 * self.reg_max, self.num_classes], dim=-1)
        points, strides = anchor_points(
            [tuple(level.shape[-2:]) for level in levels],
            self.strides,
            device=flat.device,
            dtype=torch.float32,
        )
        return cls_logits, box_outputs, points, strides

    def forward(
        self, images: Sequence[torch.Tensor] | torch.Tensor, targets: Sequence[Target] | None = None
    ) -> dict[str, torch.Tensor] | list[Target]:
        if self.training and targets is None:
            raise ValueError("YOLO in training mode needs targets; call model.eval() to get detections")
        batch, sizes = pad_images(check_images(images), multiple=max(self.strides))
        cls_logits, box_outputs, points, strides = self.flatten_outputs(self.raw_outputs(batch))
        if self.training:
            gt_labels, gt_boxes, gt_mask = pad_targets(
                targets, sizes, num_classes=self.num_classes, device=batch.device
            )
            return self.criterion(cls_logits, box_outputs, points, strides, gt_labels, gt_boxes, gt_mask)
        boxes = decode_boxes(box_outputs.float(), points, strides, self.reg_max)
        scores = cls_logits.float().sigmoid()
        return [
            select_detections(
                image_boxes,
                image_scores,
                image_size=size,
                conf_threshold=self.conf_threshold,
                iou_threshold=self.iou_threshold,
                max_det=self.max_det,
            )
            for image_boxes, image_scores, size in zip(boxes, scores, sizes, strict=True)
        ]
