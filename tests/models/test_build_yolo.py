"""The YOLO model schemas mirror the constructors, and `model=yolo|yolo_v1` builds through `build_model`."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from omegaconf import OmegaConf

from cvtrain.config import YOLOConfig, YOLOv1Config
from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model
from cvtrain.models.yolo import YOLO, YOLOv1


@pytest.mark.parametrize(("schema", "model_class"), [(YOLOConfig, YOLO), (YOLOv1Config, YOLOv1)])
def test_schema_mirrors_every_constructor_option_with_its_default(schema: type, model_class: type) -> None:
    params = {
        name: p.default
        for name, p in inspect.signature(model_class.__init__).parameters.items()
        if name not in ("self", "num_classes")
    }
    fields = {f.name: f.default for f in dataclasses.fields(schema) if f.name not in ("name", "task")}
    if model_class is YOLO:
        assert fields.pop("pretrained") is False  # inherited from ModelConfig; yolo has no weights
    assert fields == params


def test_build_model_dispatches_yolo_and_yolo_v1() -> None:
    yolo = build_model(OmegaConf.structured(YOLOConfig(name="yolo", size="n", max_det=7)), num_classes=3)
    assert isinstance(yolo, YOLO) and yolo.max_det == 7 and yolo.num_classes == 3
    v1 = build_model(OmegaConf.structured(YOLOv1Config(name="yolo_v1", grid_size=5, width=8)), num_classes=4)
    assert isinstance(v1, YOLOv1) and v1.grid_size == 5


def test_pretrained_yolo_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pretrained"):
        build_model(OmegaConf.structured(YOLOConfig(name="yolo", pretrained=True)), num_classes=3)
