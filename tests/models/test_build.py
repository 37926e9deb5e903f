"""Every `conf/model/*.yaml`: its `_target_` imports, its builder takes exactly the schema's options with the
schema's defaults, and `build_model` builds it. A new model YAML is picked up here without editing this file."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import get_method
from omegaconf import MISSING
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model
from tests.conftest import REPO, compose_config, compose_raw

MODELS = sorted(path.stem for path in Path(REPO, "conf", "model").glob("*.yaml"))


def _builder_parameters(builder: object) -> tuple[dict[str, inspect.Parameter], bool]:
    """The builder's keyword parameters but num_classes, and whether it also takes **options."""
    params = dict(inspect.signature(builder).parameters)  # a class: its __init__ without self
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        name: p
        for name, p in params.items()
        if name != "num_classes" and p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    return named, var_keyword


def test_every_model_yaml_is_found() -> None:
    assert {"resnet18", "faster_rcnn", "unet", "fcn8s", "yolo", "yolo_v1"} <= set(MODELS)


@pytest.mark.parametrize("stem", MODELS)
def test_target_imports_and_takes_the_schemas_options_with_its_defaults(stem: str) -> None:
    cfg = compose_config(f"model={stem}").model
    assert cfg._target_.startswith("cvtrain.models."), "a model's builder lives in cvtrain/models"
    builder = get_method(cfg._target_)
    params, var_keyword = _builder_parameters(builder)
    options = cfg.builder_options()
    if var_keyword:  # torchvision detectors: every size/threshold option goes through to torchvision
        assert set(params) <= set(options)
    else:
        assert set(params) == set(options), "the builder's keywords and the schema's options differ"
    schema_defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name, param in params.items():
        default = schema_defaults[name]
        if param.default is inspect.Parameter.empty or default is dataclasses.MISSING or default == MISSING:
            continue  # no builder default (the config always gives it), or the YAML sets it (e.g. backbone)
        assert param.default == default, (
            f"{stem}: builder default {name}={param.default!r}, schema's {default!r}"
        )


@pytest.mark.parametrize("stem", MODELS)
def test_every_model_builds(stem: str) -> None:
    model = build_model(compose_config(f"model={stem}").model, num_classes=3)
    assert isinstance(model, nn.Module)


@pytest.mark.parametrize(
    ("stem", "forward"),
    [
        ("small_cnn", lambda m: m(torch.rand(1, 3, 32, 32)).shape == (1, 3)),
        ("mobilenet_v3_small", lambda m: m(torch.rand(1, 3, 32, 32)).shape == (1, 3)),
        ("lraspp", lambda m: m(torch.rand(1, 3, 32, 32))["out"].shape == (1, 3, 32, 32)),
        ("yolo", lambda m: set(m([torch.rand(3, 64, 64)])[0]) == {"boxes", "scores", "labels"}),
    ],
)
def test_a_fast_model_runs_one_forward_in_eval_mode(stem: str, forward) -> None:
    torch.manual_seed(0)
    model = build_model(compose_config(f"model={stem}").model, num_classes=3).eval()
    with torch.no_grad():
        assert forward(model)


@pytest.mark.parametrize(
    "overrides",
    [
        ("model=yolo", "model.pretrained=true"),  # model=yolo has no pretrained weights
        ("model=yolo", "model.sise=n"),
        ("model=ssd", "model.min_size=300"),
        ("model=faster_rcnn", "model.rpn_nms_threshold=0.5"),
        ("model=fcn", "model.upsample=bilinear"),
    ],
)
def test_an_option_the_model_lacks_fails_at_composition(overrides: tuple[str, ...]) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_raw(*overrides)


def test_an_option_added_with_plus_is_a_config_error_naming_it() -> None:
    # Hydra lets `+` add a key to the schema's node; the typed conversion refuses it
    with pytest.raises(ConfigError, match="model.width is not an option of model; its options are"):
        compose_config("model=unet", "+model.width=8")


def test_a_target_that_does_not_import_is_a_config_error() -> None:
    cfg = dataclasses.replace(
        compose_config("model=small_cnn").model, _target_="cvtrain.models.classification.build_clasifier"
    )
    with pytest.raises(ConfigError, match=r"model._target_='cvtrain.models.classification.build_clasifier'"):
        build_model(cfg, num_classes=3)


def test_options_reach_the_builder() -> None:
    yolo = build_model(compose_config("model=yolo", "model.max_det=7").model, num_classes=3)
    assert yolo.max_det == 7 and yolo.num_classes == 3
    v1 = build_model(
        compose_config("model=yolo_v1", "model.grid_size=5", "model.width=8").model, num_classes=4
    )
    assert v1.grid_size == 5
    fcn8s = build_model(
        compose_config("model=fcn8s", "model.width=8", "model.fc_width=16").model, num_classes=2
    )
    assert any(isinstance(m, nn.BatchNorm2d) for m in fcn8s.features)  # the schema's default: VGG16-BN
