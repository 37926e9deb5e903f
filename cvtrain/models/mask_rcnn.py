"""`model=mask_rcnn`: Mask R-CNN, i.e. `model=faster_rcnn` with torchvision's mask branch, on the same backbones.

| backbone | torchvision builder | `pretrained=true` (COCO) |
|---|---|---|
| resnet50_fpn, resnet50_fpn_v2 | maskrcnn_resnet50_fpn(_v2) | every layer |
| mobilenet_v3_large_fpn, mobilenet_v3_large_320_fpn | fasterrcnn_<backbone> + the mask branch below | all but the mask branch |

torchvision has no MobileNet Mask R-CNN: there the Faster R-CNN is built by torchvision's own builder and given
Mask R-CNN's mask branch (RoIAlign 14 x 14 on the FPN levels, four 3x3 convs of 256, a deconvolution and one
mask logit per class), the layout `maskrcnn_resnet50_fpn` uses. `RoIHeads` runs a mask branch whenever it has one,
so the model trains on `masks` in its targets and returns `masks` ([N, 1, H, W] probabilities in the input
image's pixels) like any Mask R-CNN. Options, weights and the label contract are those of cvtrain/models/detection.py.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights
from torchvision.models import detection as tvdet
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from cvtrain.models.detection import DetectorEntry, TorchvisionDetector, build_detector


def _with_mask_branch(faster_rcnn_builder: Any) -> Any:
    """A torchvision Faster R-CNN builder that returns the model with Mask R-CNN's mask branch added."""

    def build(*, num_classes: int | None, **kwargs: Any) -> nn.Module:
        model = faster_rcnn_builder(num_classes=num_classes, **kwargs)
        heads = model.roi_heads
        channels = model.backbone.out_channels
        heads.mask_roi_pool = MultiScaleRoIAlign(
            featmap_names=["0", "1", "2", "3"], output_size=14, sampling_ratio=2
        )
        heads.mask_head = MaskRCNNHeads(channels, [256, 256, 256, 256], 1)
        heads.mask_predictor = MaskRCNNPredictor(256, 256, heads.box_predictor.cls_score.out_features)
        return model

    return build


BACKBONES: dict[str, DetectorEntry] = {
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
        _with_mask_branch(tvdet.fasterrcnn_mobilenet_v3_large_fpn),
        tvdet.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
        MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    ),
    "mobilenet_v3_large_320_fpn": (
        _with_mask_branch(tvdet.fasterrcnn_mobilenet_v3_large_320_fpn),
        tvdet.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
        MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    ),
}


def build_mask_rcnn(
    *,
    num_classes: int,
    backbone: str | None = None,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
    trainable_backbone_layers: int | None = None,
    **torchvision_options: int | float | None,
) -> TorchvisionDetector:
    """Mask R-CNN for `num_classes` foreground classes; targets carry `masks` ([N, H, W] uint8) beside boxes."""
    return build_detector(
        "mask_rcnn",
        num_classes,
        backbones=BACKBONES,
        backbone=backbone,
        pretrained=pretrained,
        pretrained_backbone=pretrained_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        torchvision_options=torchvision_options,
    )
