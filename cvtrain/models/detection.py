"""torchvision's detectors behind cvtrain's contract: one builder, `build_torchvision_detector`, for every
`conf/model/*.yaml` of the family, which names its architecture with `arch`.

| arch | backbone (default first) | torchvision builder |
|---|---|---|
| faster_rcnn | resnet50_fpn, resnet50_fpn_v2, mobilenet_v3_large_fpn, mobilenet_v3_large_320_fpn | fasterrcnn_<backbone> |
| mask_rcnn | the same | maskrcnn_<backbone>, or fasterrcnn_<backbone> with a mask branch (mask_rcnn.py) |
| ssd | vgg16, mobilenet_v3_large | ssd300_vgg16, ssdlite320_mobilenet_v3_large |
| retinanet | resnet50_fpn, resnet50_fpn_v2 | retinanet_<backbone> |

Common options: `pretrained` (COCO weights; the class head is replaced when num_classes differs),
`pretrained_backbone` (ImageNet), `trainable_backbone_layers`; both weights come only from the local torch hub
cache. Every other keyword option is passed to torchvision's builder (sizes and thresholds; the model's schema in
`cvtrain/config/model.py` lists them); a value of None keeps torchvision's default *for that backbone* (the 320
MobileNet variant has its own min_size, max_size, ...).

The contract (shared with cvtrain's YOLO): `model(images, targets)` with images a list of float [3,H,W] in 0..1
(normalisation happens inside) and targets `{"boxes": XYXY absolute pixels, "labels": int64 0-based}`. Training
mode returns the named losses; eval mode returns `[{"boxes", "scores", "labels"}]` in each input image's pixels
with 0-based labels. torchvision keeps label 0 for background, so the wrapper adds 1 going in, subtracts 1 out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, VGG16_Weights, WeightsEnum
from torchvision.models import detection as tvdet
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.ssd import SSD, SSDClassificationHead
from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

from cvtrain.errors import ConfigError
from cvtrain.models.mask_rcnn import with_mask_branch
from cvtrain.models.weights import torchvision_weights_from_local_cache

DetectorEntry = tuple[Callable[..., nn.Module], type[WeightsEnum], WeightsEnum]
# arch -> backbone -> (torchvision builder, its COCO weights enum, the ImageNet weights its backbone uses)
ARCHITECTURES: dict[str, dict[str, DetectorEntry]] = {
    "faster_rcnn": {
        "resnet50_fpn": (
            tvdet.fasterrcnn_resnet50_fpn,
            tvdet.FasterRCNN_ResNet50_FPN_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "resnet50_fpn_v2": (
            tvdet.fasterrcnn_resnet50_fpn_v2,
            tvdet.FasterRCNN_ResNet50_FPN_V2_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "mobilenet_v3_large_fpn": (
            tvdet.fasterrcnn_mobilenet_v3_large_fpn,
            tvdet.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
        "mobilenet_v3_large_320_fpn": (
            tvdet.fasterrcnn_mobilenet_v3_large_320_fpn,
            tvdet.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
    },
    "mask_rcnn": {  # torchvision has no MobileNet Mask R-CNN: its Faster R-CNN, given the mask branch
        "resnet50_fpn": (
            tvdet.maskrcnn_resnet50_fpn,
            tvdet.MaskRCNN_ResNet50_FPN_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "resnet50_fpn_v2": (
            tvdet.maskrcnn_resnet50_fpn_v2,
            tvdet.MaskRCNN_ResNet50_FPN_V2_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "mobilenet_v3_large_fpn": (
            with_mask_branch(tvdet.fasterrcnn_mobilenet_v3_large_fpn),
            tvdet.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
        "mobilenet_v3_large_320_fpn": (
            with_mask_branch(tvdet.fasterrcnn_mobilenet_v3_large_320_fpn),
            tvdet.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
    },
    "ssd": {
        "vgg16": (tvdet.ssd300_vgg16, tvdet.SSD300_VGG16_Weights, VGG16_Weights.IMAGENET1K_FEATURES),
        "mobilenet_v3_large": (
            tvdet.ssdlite320_mobilenet_v3_large,
            tvdet.SSDLite320_MobileNet_V3_Large_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
    },
    "retinanet": {
        "resnet50_fpn": (
            tvdet.retinanet_resnet50_fpn,
            tvdet.RetinaNet_ResNet50_FPN_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "resnet50_fpn_v2": (
            tvdet.retinanet_resnet50_fpn_v2,
            tvdet.RetinaNet_ResNet50_FPN_V2_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
    },
}


class TorchvisionDetector(nn.Module):
    """A torchvision detector speaking cvtrain's detection contract (0-based labels; background inside)."""

    def __init__(self, *, model: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("a detection model in training mode needs targets")
            self._check_labels(targets)
            shifted = [
                {
                    **{k: v.as_subclass(Tensor) for k, v in t.items()},  # boxes, and masks for Mask R-CNN
                    "labels": t["labels"].as_subclass(Tensor) + 1,
                }
                for t in targets
            ]
            return self.model(images, shifted)
        detections = self.model(images)
        # Mask R-CNN adds "masks": [N, 1, H, W] probabilities in the input image's pixels
        return [{**d, "labels": d["labels"] - 1} for d in detections]

    def _check_labels(self, targets: list[dict[str, Tensor]]) -> None:
        # An out-of-range label would index past the class head (a device-side assert on a GPU): say why instead.
        labels = torch.cat([t["labels"].reshape(-1) for t in targets])
        if labels.numel() == 0:
            return
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= self.num_classes:
            raise ConfigError(
                f"a target label is outside 0..{self.num_classes - 1} (got {low}..{high}): the model was built "
                f"with num_classes={self.num_classes}; it must equal the dataset's number of classes"
            )


def _replace_class_head(model: nn.Module, num_outputs: int) -> None:
    """Give a COCO-pretrained torchvision detector `num_outputs` classes (background included)."""
    if isinstance(model, tvdet.FasterRCNN):  # Mask R-CNN included: its mask predictor has a channel per class
        predictor, masks = model.roi_heads.box_predictor, model.roi_heads.mask_predictor
        if predictor.cls_score.out_features != num_outputs:
            model.roi_heads.box_predictor = FastRCNNPredictor(predictor.cls_score.in_features, num_outputs)
        if masks is not None and masks.mask_fcn_logits.out_channels != num_outputs:
            model.roi_heads.mask_predictor = MaskRCNNPredictor(
                masks.conv5_mask.in_channels, masks.conv5_mask.out_channels, num_outputs
            )
    elif isinstance(model, tvdet.RetinaNet):
        head = model.head.classification_head
        if head.num_classes != num_outputs:
            old = head.cls_logits
            head.cls_logits = nn.Conv2d(old.in_channels, head.num_anchors * num_outputs, 3, padding=1)
            prior_probability = 0.01  # torchvision's RetinaNetClassificationHead initialisation
            nn.init.normal_(head.cls_logits.weight, std=0.01)
            nn.init.constant_(head.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
            head.num_classes = num_outputs
    elif isinstance(model, SSD):
        head = model.head.classification_head
        if head.num_columns != num_outputs:
            in_channels = [
                next(m for m in block.modules() if isinstance(m, nn.Conv2d)).in_channels
                for block in head.module_list
            ]
            num_anchors = model.anchor_generator.num_anchors_per_location()
            if isinstance(head, SSDLiteClassificationHead):
                norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)  # as ssdlite320 builds it
                new_head: nn.Module = SSDLiteClassificationHead(
                    in_channels, num_anchors, num_outputs, norm_layer
                )
            else:
                new_head = SSDClassificationHead(in_channels, num_anchors, num_outputs)
            model.head.classification_head = new_head
    else:
        raise TypeError(f"no class-head replacement for {type(model).__name__}")


def build_torchvision_detector(
    *,
    num_classes: int,
    arch: str,
    backbone: str | None = None,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
    trainable_backbone_layers: int | None = None,
    **torchvision_options: int | float | None,
) -> TorchvisionDetector:
    """The detector `arch` for `num_classes` foreground classes (labels 0..num_classes-1); see the module doc."""
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"model.arch={arch!r} is not a torchvision detector; choose one of {[*ARCHITECTURES]}"
        )
    backbones = ARCHITECTURES[arch]
    backbone = backbone or next(iter(backbones))
    if backbone not in backbones:
        raise ConfigError(
            f"model.backbone={backbone!r} is not available for model={arch}; choose one of {[*backbones]}"
        )
    builder, weights_enum, backbone_weights = backbones[backbone]
    weights = weights_enum.DEFAULT if pretrained else None
    kwargs: dict[str, Any] = {key: value for key, value in torchvision_options.items() if value is not None}
    # Without pretrained weights torchvision trains every layer and warns about this option: leave it out.
    if trainable_backbone_layers is not None and (pretrained or pretrained_backbone):
        kwargs["trainable_backbone_layers"] = trainable_backbone_layers
    with torchvision_weights_from_local_cache():
        model = builder(
            weights=weights,
            weights_backbone=backbone_weights if pretrained_backbone else None,
            # torchvision insists on the weights' own 91 COCO classes; the head is replaced below
            num_classes=None if pretrained else num_classes + 1,
            **kwargs,
        )
    if pretrained:
        _replace_class_head(model, num_classes + 1)
    return TorchvisionDetector(model=model, num_classes=num_classes)
