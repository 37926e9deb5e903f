"""model=mask_rcnn: torchvision's Mask R-CNN (ResNet-50 FPN v1/v2) and Faster R-CNN + the same mask branch on the
MobileNet backbones, behind cvtrain's detection contract with masks in and out."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import detection as tvdet

from cvtrain.errors import ConfigError
from cvtrain.models.detection import TorchvisionDetector, _replace_class_head, build_torchvision_detector

TINY = {"backbone": "mobilenet_v3_large_320_fpn", "min_size": 64, "max_size": 96, "box_score_thresh": 0.0}


def images_and_targets() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    masks = torch.zeros(2, 80, 96, dtype=torch.uint8)
    masks[0, 12:60, 10:50] = 1
    masks[1, 5:30, 40:90] = 1
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [40.0, 5.0, 90.0, 30.0]]), "labels": torch.tensor([0, 2]),
         "masks": masks},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
         "masks": torch.zeros(0, 64, 72, dtype=torch.uint8)},
    ]  # fmt: skip
    return [torch.rand(3, 80, 96), torch.rand(3, 64, 72)], targets


def test_the_mobilenet_mask_rcnn_trains_on_masks_and_returns_them() -> None:
    torch.manual_seed(0)
    model = build_torchvision_detector(arch="mask_rcnn", num_classes=3, **TINY)
    assert isinstance(model, TorchvisionDetector) and model.model.roi_heads.has_mask()
    assert model.model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4  # background + 3
    images, targets = images_and_targets()
    model.train()
    losses = model(images, targets)
    assert {"loss_mask", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} == set(
        losses
    )
    sum(losses.values()).backward()
    assert model.model.roi_heads.mask_head[0][0].weight.grad.abs().sum() > 0  # the mask branch learns
    model.eval()
    with torch.no_grad():
        out = model(images)
    for detections, image in zip(out, images, strict=True):
        n = len(detections["boxes"])
        assert detections["masks"].shape == (n, 1, *image.shape[-2:]) and n > 0
        assert detections["labels"].min() >= 0 and detections["labels"].max() <= 2  # 0-based again


@pytest.mark.parametrize("backbone", ["resnet50_fpn", "resnet50_fpn_v2"])
def test_resnet_backbones_are_torchvisions_mask_rcnn(backbone: str) -> None:
    model = build_torchvision_detector(arch="mask_rcnn", num_classes=5, backbone=backbone)
    assert isinstance(model.model, tvdet.MaskRCNN)
    assert model.model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 6
    with pytest.raises(ConfigError, match="mobilenet_v3_large_320_fpn"):
        build_torchvision_detector(arch="mask_rcnn", num_classes=5, backbone="vgg16")


def test_a_coco_head_is_replaced_for_the_datasets_classes() -> None:
    model = build_torchvision_detector(
        arch="mask_rcnn", num_classes=90, **TINY
    ).model  # 91 outputs, as COCO weights have
    _replace_class_head(model, 4)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4
