"""Every `conf/data/*.yaml` names an importable builder with `_target_` and keeps its defaults in the schema;
`build_data` dispatches to it; the task checks and evaluation transforms every builder shares."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from hydra.utils import get_method
from omegaconf import OmegaConf
from torchvision import tv_tensors

from cvtrain.config.registry import SCHEMAS
from cvtrain.data.splits import build_data, require_task
from cvtrain.data.transforms.pipelines import eval_transform
from cvtrain.errors import ConfigError
from tests.conftest import REPO, compose_config, compose_raw

DATA_YAMLS = sorted((REPO / "conf" / "data").glob("*.yaml"))
BUILDER_KEYWORDS = {"aug", "task", "need_train", "require_images"}


def test_the_data_group_is_read() -> None:
    assert {p.stem for p in DATA_YAMLS} >= {"shapes", "voc", "coco", "voc_seg", "coco_seg", "imagefolder"}


@pytest.mark.parametrize("path", DATA_YAMLS, ids=lambda p: p.stem)
def test_every_data_option_names_an_importable_builder(path: Path) -> None:
    target = OmegaConf.load(path).get("_target_")
    assert target, f"{path} has no _target_"
    builder = get_method(target)
    assert set(inspect.signature(builder).parameters) >= BUILDER_KEYWORDS, f"{target} is not a data builder"
    assert compose_raw(f"data={path.stem}").data._target_ == target  # the composed config keeps it


@pytest.mark.parametrize("path", DATA_YAMLS, ids=lambda p: p.stem)
def test_data_options_do_not_repeat_their_schemas_defaults(path: Path) -> None:
    option = OmegaConf.load(path)
    (schema_ref,) = [d for d in option.defaults if d.startswith("/schema/data/")]
    name = schema_ref.removeprefix("/schema/data/").removesuffix("@_here_")
    (schema,) = [cls for group, n, cls in SCHEMAS if group == "data" and n == name]
    defaults = OmegaConf.structured(schema)
    written, default_values = OmegaConf.to_container(option), OmegaConf.to_container(defaults)  # unresolved
    repeated = [
        key
        for key in option
        if key not in ("defaults", "_target_")
        and not OmegaConf.is_missing(option, key)  # `root: ???` says where a value is required
        and not OmegaConf.is_missing(defaults, key)
        and written[key] == default_values[key]  # type: ignore[index]
    ]
    assert not repeated, f"{path} repeats the defaults of {schema.__name__}: {repeated}"


def test_a_target_that_does_not_import_is_a_config_error() -> None:
    data = compose_config("data=synthetic").data
    data._target_ = "cvtrain.data.nowhere.build_nothing"
    with pytest.raises(ConfigError, match=r"data._target_='cvtrain.data.nowhere.build_nothing'"):
        build_data(data, None, task="classification", need_train=False)


def test_build_data_calls_the_named_builder() -> None:
    cfg = compose_config("data=synthetic", "data.length=4", "data.image_size=8", "data.num_classes=3")
    splits = build_data(cfg.data, cfg.aug, task="classification", need_train=True)
    assert len(splits.train) == len(splits.val) == 4 and splits.class_names == [
        "class_0",
        "class_1",
        "class_2",
    ]
    assert build_data(cfg.data, cfg.aug, task="classification", need_train=False).train is None


@pytest.mark.parametrize(
    ("supported", "task", "message"),
    [
        (
            ("classification",),
            "detection",
            "Pick a detection dataset \\(e.g. data=shapes\\) or a classification",
        ),
        (("detection",), "segmentation", "Pick a detection model \\(e.g. model=faster_rcnn\\)"),
        (("segmentation",), "classification", "Pick a segmentation model \\(e.g. model=fcn\\)"),
    ],
)
def test_a_dataset_for_another_task_says_what_to_pick(supported, task, message) -> None:
    require_task("x", supported[0], supported)  # its own task passes
    with pytest.raises(
        ConfigError, match=f"data=x provides {supported[0]} data but the model is a {task} model"
    ):
        require_task("x", task, supported)
    with pytest.raises(ConfigError, match=message):
        require_task("x", task, supported)


def test_shapes_has_no_form_for_an_unknown_task(tmp_path: Path) -> None:
    cfg = compose_config("data=shapes", f"data.cache_dir={tmp_path}")
    with pytest.raises(ConfigError, match="data=shapes has no keypoints form"):
        build_data(cfg.data, cfg.aug, task="keypoints", need_train=False)


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [
        (("model=resnet18", "aug=imagenet", "data.image_size=16"), (3, 16, 16)),  # resize + centre crop
        (("model=faster_rcnn", "aug=detection"), (3, 30, 40)),  # unchanged: the detector resizes itself
        (("model=unet", "aug=segmentation"), (3, 30, 40)),  # full resolution
    ],
)
def test_eval_transform_of_each_task_takes_a_bare_image(overrides: tuple[str, ...], shape: tuple) -> None:
    cfg = compose_config(*overrides)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 30, 40), dtype=torch.uint8))
    out = eval_transform(cfg.model.task, cfg.aug)(image)
    assert tuple(out.shape) == shape and out.dtype == torch.uint8  # the task makes it float on the device
