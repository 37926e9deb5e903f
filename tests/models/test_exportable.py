"""cvtrain/models/exportable.py: what each kind of model exports, and the refusal of torchvision's detectors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.exportable import exportable
from cvtrain.models.segmentation import build_unet
from cvtrain.models.yolo import YOLOv1


def test_segmenter_exports_its_main_logits_only() -> None:
    model = build_unet(num_classes=3, base_width=4, depth=2)
    exp = exportable(model, task="segmentation", name="unet", num_classes=3)
    (logits,) = exp.module(torch.randn(1, 3, 20, 28))
    assert logits.shape == (1, 3, 20, 28) and exp.dynamic_size and not exp.module.training
    assert exp.outputs[0]["shape"] == ["batch", 3, "height", "width"]


def test_yolo_v1_candidates_keep_the_batch_apart() -> None:
    model = YOLOv1(num_classes=2, image_size=64, width=4, head_channels=8, grid_size=2).eval()
    exp = exportable(model, task="detection", name="yolo_v1", num_classes=2)
    images = torch.rand(2, 3, 64, 64)
    boxes, scores = exp.module(images)
    assert boxes.shape == (2, 2 * 2 * 2, 4) and scores.shape == (2, 8, 2)
    # Each image's candidates are those it gets alone.
    alone_boxes, alone_scores = exp.module(images[1:])
    torch.testing.assert_close(boxes[1:], alone_boxes)
    torch.testing.assert_close(scores[1:], alone_scores)
    assert exp.postprocess["boxes"] == "fractions of the image" and not exp.postprocess["nms_applied"]


def test_torchvision_detectors_are_refused_naming_what_is_supported() -> None:
    with pytest.raises(ConfigError, match=r"does not support model=faster_rcnn .* it exports classifiers"):
        exportable(nn.Identity(), task="detection", name="faster_rcnn", num_classes=3)
