import re

import pytest

from cvtrain.errors import ConfigError
from cvtrain.models.yolo import YOLO, YOLOv1


def test_build_both_models_with_options() -> None:
    model = YOLO(num_classes=7, size="n", reg_max=8, conf_threshold=0.25, max_det=50)
    assert (model.num_classes, model.reg_max, model.conf_threshold, model.max_det) == (7, 8, 0.25, 50)
    v1 = YOLOv1(num_classes=4, grid_size=5, image_size=160, width=8, hidden=32)
    assert v1.grid_size == 5


@pytest.mark.parametrize(
    ("model_class", "options", "message"),
    [
        (YOLO, {"size": "xl"}, "model.size='xl'"),
        (YOLO, {"cls_loss": "focal"}, "model.cls_loss"),
        (YOLO, {"box_loss": "iou"}, "model.box_loss"),
        (YOLO, {"reg_max": 0}, "model.reg_max"),
        (YOLO, {"iou_threshold": 1.5}, "model.iou_threshold"),
        (YOLOv1, {"backbone": "vgg16"}, "model.backbone"),
        (YOLOv1, {"head": "mlp"}, "model.head"),
        (YOLOv1, {"pretrained": True}, "model.backbone=resnet18"),
    ],
)
def test_bad_options_fail_with_the_key_named(model_class: type, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        model_class(num_classes=3, **options)
