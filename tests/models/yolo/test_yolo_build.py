import re

import pytest

from cvtrain.errors import ConfigError
from cvtrain.models.yolo import YOLO, YOLOv1, build_yolo


def test_build_both_models_with_options() -> None:
    model = build_yolo(name="yolo", num_classes=7, size="n", reg_max=8, conf_threshold=0.25, max_det=50)
    assert isinstance(model, YOLO)
    assert (model.num_classes, model.reg_max, model.conf_threshold, model.max_det) == (7, 8, 0.25, 50)
    v1 = build_yolo(name="yolo_v1", num_classes=4, grid_size=5, image_size=160, width=8, hidden=32)
    assert isinstance(v1, YOLOv1) and v1.grid_size == 5


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("yolo_v9", {}, "model='yolo_v9'"),
        ("yolo", {"sise": "n"}, "model.sise"),
        ("yolo_v1", {"reg_max": 4}, "model.reg_max"),
        ("yolo", {"size": "xl"}, "model.size='xl'"),
        ("yolo", {"cls_loss": "focal"}, "model.cls_loss"),
        ("yolo", {"box_loss": "iou"}, "model.box_loss"),
        ("yolo", {"reg_max": 0}, "model.reg_max"),
        ("yolo", {"iou_threshold": 1.5}, "model.iou_threshold"),
        ("yolo_v1", {"backbone": "vgg16"}, "model.backbone"),
        ("yolo_v1", {"head": "mlp"}, "model.head"),
        ("yolo_v1", {"pretrained": True}, "model.backbone=resnet18"),
    ],
)
def test_bad_options_fail_with_the_key_named(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_yolo(name=name, num_classes=3, **options)
