"""`model=mask_rcnn` (`arch: mask_rcnn` of cvtrain/models/detection.py): Mask R-CNN, i.e. `model=faster_rcnn` with
torchvision's mask branch, on the same backbones.

| backbone | torchvision builder | `pretrained=true` (COCO) |
|---|---|---|
| resnet50_fpn, resnet50_fpn_v2 | maskrcnn_resnet50_fpn(_v2) | every layer |
| mobilenet_v3_large_fpn, mobilenet_v3_large_320_fpn | fasterrcnn_<backbone> + the mask branch below | all but the mask branch |

torchvision has no MobileNet Mask R-CNN: there the Faster R-CNN is built by torchvision's own builder and given
Mask R-CNN's mask branch by `with_mask_branch` (RoIAlign 14 x 14 on the FPN levels, four 3x3 convs of 256, a
deconvolution and one mask logit per class), the layout `maskrcnn_resnet50_fpn` uses. `RoIHeads` runs a mask branch whenever it has one,
so the model trains on `masks` in its targets and returns `masks` ([N, 1, H, W] probabilities in the input
image's pixels) like any Mask R-CNN. Options, weights and the label contract are those of cvtrain/models/detection.py.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign


def with_mask_branch(faster_rcnn_builder: Any) -> Any:
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
