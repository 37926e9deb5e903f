"""`model=yolo_v1`: the original YOLO (Redmon et al., 2016), a teaching and baseline model.

An image is resized (stretched) to `image_size`² inside the model, a conv trunk and a grid head
predict an S×S×(5·boxes + C) grid (see `v1_loss` for the layout), and detections are mapped back to each
input image's own pixel coordinates. Inputs are float 0..1 and are normalised inside the model with the ImageNet
mean/std (what a pretrained resnet18 trunk expects). Departures from the paper, for trainability on small data:
BatchNorm after every conv; sigmoid on (x, y, √w, √h, confidence) and softmax on the class scores, so every
output stays in its range (the loss is still the paper's sum-squared error on those quantities); and a
convolutional grid head by default (`head="fc"` gives the paper's fully connected one, which on the synthetic
shapes data learns far slower: see `grid_head`). `hidden` and `dropout` apply to the "fc" head only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from cvtrain.errors import ConfigError
from cvtrain.models.weights import default_weights, local_weights_state
from cvtrain.models.yolo.inputs import check_images, pad_targets
from cvtrain.models.yolo.model import Target, check_choice, check_range
from cvtrain.models.yolo.nms import select_detections
from cvtrain.models.yolo.v1_loss import BOX_FIELDS, YOLOv1Loss, decode_predictions, encode_targets

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("darknet", "resnet18")
HEADS = ("conv", "fc")


def conv_bn_leaky(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.1, inplace=True),  # the paper's activation
    )


def darknet_trunk(width: int) -> tuple[nn.Sequential, int]:
    """A small version of the paper's trunk (7×7 stem, 1×1 reductions before 3×3 convs) at stride 32."""
    w = width
    trunk = nn.Sequential(
        conv_bn_leaky(3, w, 7, stride=2),
        nn.MaxPool2d(2),
        conv_bn_leaky(w, 2 * w, 3),
        nn.MaxPool2d(2),
        conv_bn_leaky(2 * w, 2 * w, 1),
        conv_bn_leaky(2 * w, 4 * w, 3),
        nn.MaxPool2d(2),
        conv_bn_leaky(4 * w, 4 * w, 1),
        conv_bn_leaky(4 * w, 8 * w, 3),
        nn.MaxPool2d(2),
        conv_bn_leaky(8 * w, 8 * w, 1),
        conv_bn_leaky(8 * w, 16 * w, 3),
    )
    return trunk, 16 * w


def grid_head(
    kind: str, *, c_in: int, channels: int, grid_size: int, hidden: int, dropout: float
) -> nn.Sequential:
    """Trunk features → the input of the final predictor layer (see `YOLOv1.predictor`).

    "fc" is the paper's head: the whole S×S map flattened into fully connected layers, so every cell sees the
    whole image but must learn position from scratch. "conv" keeps the grid: 3×3 convs on the S×S map, each cell
    predicted from its neighbourhood; it trains far faster on small data (the default).
    """
    layers = [conv_bn_leaky(c_in, channels, 3), nn.AdaptiveAvgPool2d(grid_size)]  # S×S for any image_size
    if kind == "conv":
        return nn.Sequential(*layers, conv_bn_leaky(channels, channels, 3))
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(channels * grid_size * grid_size, hidden),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Dropout(dropout),
    )


def resnet18_trunk(pretrained: bool) -> tuple[nn.Sequential, int]:
    net = resnet18(weights=None)
    if pretrained:
        net.load_state_dict(local_weights_state(default_weights("resnet18")))
    return nn.Sequential(*list(net.children())[:-2]), 512  # without the pooling and classifier


class YOLOv1(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        grid_size: int = 7,
        boxes_per_cell: int = 2,
        image_size: int = 448,
        backbone: str = "darknet",
        width: int = 32,
        pretrained: bool = False,
        head: str = "conv",
        head_channels: int = 256,
        hidden: int = 1024,
        dropout: float = 0.5,
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        conf_threshold: float = 0.001,
        iou_threshold: float = 0.5,
        max_det: int = 100,
    ) -> None:
        super().__init__()
        check_range("num_classes", num_classes, 1, float("inf"))
        check_range("grid_size", grid_size, 1, 64)
        check_range("boxes_per_cell", boxes_per_cell, 1, 16)
        check_range("image_size", image_size, 32, 4096)
        check_choice("backbone", backbone, BACKBONES)
        check_choice("head", head, HEADS)
        if pretrained and backbone != "resnet18":
            raise ConfigError(
                "model.pretrained=true needs model.backbone=resnet18 (the darknet trunk has no pretrained weights)."
            )
        check_range("dropout", dropout, 0.0, 1.0)
        check_range("conf_threshold", conf_threshold, 0.0, 1.0)
        check_range("iou_threshold", iou_threshold, 0.0, 1.0)
        check_range("max_det", max_det, 1, float("inf"))
        self.num_classes = num_classes
        self.grid_size = grid_size
        self.boxes_per_cell = boxes_per_cell
        self.image_size = image_size
        self.head_kind = head
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_det = max_det
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.trunk, trunk_channels = (
            resnet18_trunk(pretrained) if backbone == "resnet18" else darknet_trunk(width)
        )
        self.cell_channels = BOX_FIELDS * boxes_per_cell + num_classes
        self.head = grid_head(
            head,
            c_in=trunk_channels,
            channels=head_channels,
            grid_size=grid_size,
            hidden=hidden,
            dropout=dropout,
        )
        # The last layer, linear: all S·S·(5·boxes + C) outputs ("fc"), or a 1×1 conv per cell ("conv").
        self.predictor: nn.Module = (
            nn.Conv2d(head_channels, self.cell_channels, 1)
            if head == "conv"
            else nn.Linear(hidden, grid_size * grid_size * self.cell_channels)
        )
        self.criterion = YOLOv1Loss(
            boxes_per_cell=boxes_per_cell, lambda_coord=lambda_coord, lambda_noobj=lambda_noobj
        )

    def grid_outputs(self, batch: torch.Tensor) -> torch.Tensor:
        """A resized batch [B, 3, image_size, image_size] in 0..1 → activated predictions [B, S, S, 5·boxes + C]."""
        features = self.trunk((batch - self.mean) / self.std)
        raw = self.predictor(self.head(features))
        if self.head_kind == "conv":
            raw = raw.permute(0, 2, 3, 1)  # [B, C, S, S] → [B, S, S, C]
        else:
            raw = raw.view(-1, self.grid_size, self.grid_size, self.cell_channels)
        box_fields, class_logits = raw.split([BOX_FIELDS * self.boxes_per_cell, self.num_classes], dim=-1)
        return torch.cat([box_fields.sigmoid(), class_logits.softmax(dim=-1)], dim=-1)

    def resize(self, images: list[torch.Tensor]) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        return torch.cat(
            [
                F.interpolate(im[None], size=size, mode="bilinear", antialias=True, align_corners=False)
                for im in images
            ]
        )

    def forward(
        self, images: Sequence[torch.Tensor] | torch.Tensor, targets: Sequence[Target] | None = None
    ) -> dict[str, torch.Tensor] | list[Target]:
        if self.training and targets is None:
            raise ValueError("YOLOv1 in training mode needs targets; call model.eval() to get detections")
        images = check_images(images)
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        pred = self.grid_outputs(self.resize(images))
        # Boxes relative to each image (0..1) are the same before and after the stretch-resize.
        scale = torch.tensor([[w, h, w, h] for h, w in sizes], dtype=torch.float32, device=pred.device)
        if self.training:
            labels, boxes, mask = pad_targets(
                targets, sizes, num_classes=self.num_classes, device=pred.device
            )
            grids = torch.stack(
                [
                    encode_targets(
                        image_boxes[keep] / image_scale,
                        image_labels[keep],
                        grid_size=self.grid_size,
                        num_classes=self.num_classes,
                    )
                    for image_boxes, image_labels, keep, image_scale in zip(
                        boxes, labels, mask, scale, strict=True
                    )
                ]
            )
            return self.criterion(pred, grids)
        detections = []
        for image_pred, image_scale, size in zip(pred.float(), scale, sizes, strict=True):
            boxes, scores = decode_predictions(image_pred, boxes_per_cell=self.boxes_per_cell)
            detections.append(
                select_detections(
                    boxes * image_scale,
                    scores,
                    image_size=size,
                    conf_threshold=self.conf_threshold,
                    iou_threshold=self.iou_threshold,
                    max_det=self.max_det,
                )
            )
        return detections
