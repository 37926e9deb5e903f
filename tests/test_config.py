"""Every option of every config group composes, resolves and passes its schema."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cvtrain.config import GROUPS
from cvtrain.config.compose import CONF_DIR
from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model
from cvtrain.overrides import check_overrides
from cvtrain.tasks.build import BUILDERS, build_task
from tests.conftest import compose_config, compose_raw

OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted(Path(CONF_DIR, g).glob("*.yaml"))]


def test_every_group_has_options() -> None:
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = compose_raw(f"{group}={option}")
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container[group], dict)
    if group == "model":
        assert cfg.model.name == option and cfg.model.task in BUILDERS  # a task cvtrain has
    if group == "aug":
        assert isinstance(cfg.aug.image_size, int)


def test_misspelled_key_names_it_and_the_valid_keys() -> None:
    problem = check_overrides(["optim.lrr=0.1"], "fit")
    assert problem is not None and "lrr" in problem and "valid keys of optim" in problem and "lr," in problem


def test_unknown_option_lists_the_choices() -> None:
    problem = check_overrides(["model=resnet5"], "fit")
    assert problem is not None and "model/resnet5" in problem and "resnet50" in problem


def test_wrong_type_is_rejected() -> None:
    problem = check_overrides(["trainer.epochs=many"], "fit")
    assert problem is not None and "trainer.epochs" in problem


def test_every_value_of_a_sweep_is_checked() -> None:
    assert check_overrides(["model=resnet18,alexnet", "optim.lr=0.1,0.01"], "fit") is None
    problem = check_overrides(["model=resnet18,alexnett"], "fit")
    assert problem is not None and "alexnett" in problem


EXPERIMENTS = sorted(f.stem for f in Path(CONF_DIR, "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(experiment: str) -> None:
    cfg = compose_raw(f"+experiment={experiment}")
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert container["trainer"]["epochs"] >= 1
    assert check_overrides([f"+experiment={experiment}"], "fit") is None


@pytest.mark.parametrize(
    ("overrides", "size"),
    [
        (["model=small_cnn"], 32),  # one 32 px shape per image
        (["model=unet"], 128),  # the whole scene: a crop or letterbox never cuts it down
        (["model=yolo", "data.scene_size=96"], 96),
        (["model=fcn8s", "data.image_size=48"], 48),  # an explicit size wins
    ],
)
def test_shapes_image_size_follows_the_task(overrides: list[str], size: int) -> None:
    cfg = compose_config("data=shapes", *overrides)
    assert cfg.data.image_size == size and cfg.aug.image_size == size


@pytest.mark.parametrize("model", ["small_cnn", "mobilenet_v3_small", "yolo_v1", "unet", "fcn8s"])
def test_models_without_a_reference_recipe_keep_the_default_schedule(model: str) -> None:
    # the models with one: tests/config/test_recipes.py
    cfg = compose_config(f"model={model}")
    assert cfg.sched.name == ("poly" if cfg.model.task == "segmentation" else "cosine")


@pytest.mark.parametrize(
    ("overrides", "sched"),
    [
        (["model=unet", "sched=step"], "step"),  # the command line wins
        (["+experiment=shapes_unet"], "cosine"),  # and so does an experiment
    ],
)
def test_an_explicit_schedule_beats_the_segmentation_default(overrides: list[str], sched: str) -> None:
    assert compose_config(*overrides).sched.name == sched


def test_the_typed_config_has_the_schema_types() -> None:
    cfg = compose_config("data=shapes", "data.layout=coco", "model=unet")
    assert type(cfg.data).__name__ == "ShapesDataConfig" and cfg.data.layout == "coco"
    assert type(cfg.model).__name__ == "UNetConfig" and cfg.aug.image_size == cfg.data.image_size == 128


def test_an_unset_required_value_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"data.root is required.*data.root=\.\.\."):
        compose_config("data=imagefolder")


def test_plots_are_on_by_default_and_switch_off_as_a_typed_bool() -> None:
    assert compose_config().trainer.plots is True
    assert compose_config("trainer.plots=false").trainer.plots is False
    problem = check_overrides(["trainer.plots=sometimes"], "fit")
    assert problem is not None and "trainer.plots" in problem


def test_the_logger_group_is_a_list_of_recorders_each_typed_by_its_schema() -> None:
    assert list(compose_config().logger) == ["tensorboard", "csv", "console"]  # the defaults
    assert list(compose_config("logger=[tensorboard,csv]").logger) == ["tensorboard", "csv"]
    assert compose_config("logger=none").logger == compose_config("logger=[]").logger == {}
    console = compose_config("logger.console.progress=false").logger["console"]
    assert type(console).__name__ == "ConsoleConfig" and console.progress is False
    assert check_overrides(["-m", "logger=[tensorboard,csv],[csv]"], "fit") is None  # a sweep of lists
    for typo, named in (
        (["logger.console.progres=false"], "logger.console.progres"),
        (["logger.console.progress=sometimes"], "logger.console.progress"),
        (["logger=[tensorboard,cvs]"], "logger/cvs"),
        (["logger=[csv]", "logger.console.progress=false"], "logger.console"),  # no console chosen
    ):
        problem = check_overrides(typo, "fit")
        assert problem is not None and named in problem, (typo, problem)
    with pytest.raises(ConfigError, match="logger.csv.path is not an option of logger.csv"):
        compose_config("+logger.csv.path=x")


def test_regularisation_options_compose_typed_and_reach_model_and_task() -> None:
    cfg = compose_config(
        "model=resnet18",
        "model.stochastic_depth=0.2",
        "model.stochastic_depth_mode=batch",
        "model.label_smoothing=0.1",
        "aug.mixup=0.2",
        "aug.cutmix=1",
    )
    assert (cfg.model.stochastic_depth, cfg.model.label_smoothing, cfg.aug.mixup, cfg.aug.cutmix) == (
        0.2,
        0.1,
        0.2,
        1.0,
    )
    assert "label_smoothing" not in cfg.model.builder_options()  # a loss option: the task reads it
    model = build_model(cfg.model, num_classes=3)
    assert [m.p for m in model.modules() if type(m).__name__ == "StochasticDepth"][-1] == pytest.approx(0.2)
    task = build_task(
        cfg.model, class_names=["a", "b", "c"], predict_cfg=cfg.predict, eval_cfg=cfg.eval, aug=cfg.aug
    )
    assert task.label_smoothing == 0.1 and task.mix is not None
    assert check_overrides(["aug.mixup=lots"], "fit") is not None
