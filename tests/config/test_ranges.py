"""Every numeric config value has a declared range, checked with one message (key, value, range) before work
starts: on the command line without importing torch, and on a composed config whatever set the value."""

import dataclasses
import typing
from pathlib import Path

import pytest

from cvtrain.config import Config, to_typed
from cvtrain.config.ranges import range_of
from cvtrain.config.registry import SCHEMAS
from cvtrain.errors import ConfigError
from cvtrain.overrides import check_overrides
from tests.conftest import compose_raw, run_main_reporting_imports

EPOCHS_HINT = " To evaluate a checkpoint without training: cvtrain eval ckpt=PATH."


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=0", "data.batch_size=0 is out of range: data.batch_size must be >= 1."),
        ("data.batch_size=-1", "data.batch_size=-1 is out of range: data.batch_size must be >= 1."),
        ("data.num_workers=-3", "data.num_workers=-3 is out of range: data.num_workers must be >= 0."),
        ("trainer.epochs=0", "trainer.epochs=0 is out of range: trainer.epochs must be >= 1." + EPOCHS_HINT),
        ("optim.lr=abc", "optim.lr=abc is not a number (optim.lr takes a number, e.g. 0.1)."),
        ("optim.lr=0", "optim.lr=0.0 is out of range: optim.lr must be > 0."),
        (
            "trainer.epochs=1.5",
            "trainer.epochs=1.5 is not a whole number (trainer.epochs takes an integer, e.g. 4).",
        ),
    ],
)
def test_a_bad_command_line_value_is_refused_with_one_line_before_torch_loads(
    override: str, message: str, tmp_path: Path
) -> None:
    proc = run_main_reporting_imports("fit", override, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == f"cvtrain fit: {message}\n"
    assert "imported: []" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=synthetic", "data.length=0"], "data.length=0 is out of range: data.length must be >= 1."),
        (["data.image_size=0"], "data.image_size=0 is out of range: data.image_size must be >= 1."),
        (["model=resnet18", "model.dropout=1"], "model.dropout=1.0 is out of range: model.dropout must be in [0, 1)."),
        (
            ["model=faster_rcnn", "model.box_nms_thresh=1.5"],
            "model.box_nms_thresh=1.5 is out of range: model.box_nms_thresh must be in [0, 1].",
        ),
        (["model=yolo", "model.prior_prob=1"], "model.prior_prob=1.0 is out of range: model.prior_prob must be in (0, 1)."),
        (["optim.momentum=1"], "optim.momentum=1.0 is out of range: optim.momentum must be in [0, 1)."),
        (["optim.weight_decay=-0.1"], "optim.weight_decay=-0.1 is out of range: optim.weight_decay must be >= 0."),
        (
            ["optim=adamw", "optim.betas=[0.9,1.0]"],
            "optim.betas=[0.9, 1.0] is out of range: optim.betas[1] must be in [0, 1).",
        ),
        (["sched.gamma=0"], "sched.gamma=0.0 is out of range: sched.gamma must be > 0."),
        (["sched=multistep", "sched.milestones=[5,0]"], "sched.milestones=[5, 0] is out of range: sched.milestones[1] must be >= 1."),
        (["aug.hflip=1.5"], "aug.hflip=1.5 is out of range: aug.hflip must be in [0, 1]."),
        (["aug.crop_scale=[0,1]"], "aug.crop_scale=[0.0, 1.0] is out of range: aug.crop_scale[0] must be in (0, 1]."),
        (["trainer.ema_decay=1"], "trainer.ema_decay=1.0 is out of range: trainer.ema_decay must be in [0, 1)."),
        (["trainer.accumulate=0"], "trainer.accumulate=0 is out of range: trainer.accumulate must be >= 1."),
        (["predict.score_threshold=-0.1"], "predict.score_threshold=-0.1 is out of range: predict.score_threshold must be in [0, 1]."),
        (["bench.steps=0"], "bench.steps=0 is out of range: bench.steps must be >= 1."),
        (["optim.lr=nan"], "optim.lr=nan is out of range: optim.lr must be > 0."),
        (["data.pin_memory=maybe"], "data.pin_memory=maybe is not true or false (data.pin_memory takes a boolean: true or false)."),
        (["data.batch_size=1,0", "-m"], "data.batch_size=0 is out of range: data.batch_size must be >= 1."),  # each sweep value
    ],
)  # fmt: skip
def test_each_group_checks_its_ranges(overrides: list[str], message: str) -> None:
    assert check_overrides(overrides, "fit") == message


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.num_workers=0"],
        ["model.dropout=0"],
        ["optim.momentum=0"],
        ["aug.hflip=1"],
        ["model=unet", "model.class_weights=null"],
    ],
)
def test_values_at_the_ends_of_their_ranges_pass(overrides: list[str]) -> None:
    assert check_overrides(overrides, "fit") is None


def test_a_value_not_from_the_command_line_is_checked_when_typed() -> None:
    """A YAML file, an experiment or a checkpoint's config sets it: `to_typed` checks the composed config."""
    cfg = compose_raw()
    cfg.trainer.epochs = 0
    with pytest.raises(ConfigError) as e:
        to_typed(cfg)
    assert str(e.value) == "trainer.epochs=0 is out of range: trainer.epochs must be >= 1." + EPOCHS_HINT


def _schemas() -> list[type]:
    """Every schema dataclass: the group options' and the top-level config's (eval, predict, export, ...)."""
    found = {cls for _, _, cls in SCHEMAS} | {Config}
    todo = list(found)
    while todo:
        for f in dataclasses.fields(todo.pop()):
            for t in (f.type, *typing.get_args(f.type)):
                if dataclasses.is_dataclass(t) and t not in found:
                    found.add(t)
                    todo.append(t)
    return sorted(found, key=lambda c: c.__qualname__)


# Numbers whose every value means something: per-channel means, the VOC years to read.
UNBOUNDED = {"AugConfig.mean", "VOCDataConfig.years", "VOCDataConfig.val_years"}


def _is_numeric(annotation: object) -> bool:
    return any(t in (int, float) for t in (annotation, *typing.get_args(annotation))) or any(
        _is_numeric(a) for a in typing.get_args(annotation) if typing.get_origin(a) is list
    )


def test_every_numeric_field_of_every_schema_declares_its_range() -> None:
    unbounded = []
    for schema in _schemas():
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            if _is_numeric(hints[f.name]) and range_of(schema, f.name) is None:
                unbounded.append(f"{schema.__qualname__}.{f.name}")
    assert sorted(unbounded) == sorted(UNBOUNDED)


@pytest.mark.parametrize("key", ["trainer.epochs", "trainer.device"])
def test_an_unset_environment_variable_is_named_before_torch_loads(key: str, tmp_path: Path) -> None:
    proc = run_main_reporting_imports("fit", f"{key}=${{oc.env:CVTRAIN_TEST_UNSET}}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == (
        f"cvtrain fit: {key} reads the environment variable CVTRAIN_TEST_UNSET, which is not set: set it "
        f"(export CVTRAIN_TEST_UNSET=...) or give {key}=VALUE.\n"
    )
    assert "imported: []" in proc.stderr and "Traceback" not in proc.stderr
