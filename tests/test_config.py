"""Every option of every config group composes, resolves and passes its schema."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from cvtrain.cli import CONF_DIR
from cvtrain.config import register_schemas
from cvtrain.overrides import GROUPS, check_overrides

OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted(Path(CONF_DIR, g).glob("*.yaml"))]


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def test_every_group_has_options() -> None:
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = compose(config_name="config", overrides=[f"{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container[group], dict)
    if group == "model":
        assert cfg.model.name == option and cfg.model.task in ("classification", "detection", "segmentation")
    if group == "aug":
        assert isinstance(cfg.aug.image_size, int)


def test_misspelled_key_names_it_and_the_valid_keys() -> None:
    problem = check_overrides(CONF_DIR, ["optim.lrr=0.1"], "fit")
    assert problem is not None and "lrr" in problem and "valid keys of optim" in problem and "lr," in problem


def test_unknown_option_lists_the_choices() -> None:
    problem = check_overrides(CONF_DIR, ["model=resnet5"], "fit")
    assert problem is not None and "model/resnet5" in problem and "resnet50" in problem


def test_wrong_type_is_rejected() -> None:
    problem = check_overrides(CONF_DIR, ["trainer.epochs=many"], "fit")
    assert problem is not None and "trainer.epochs" in problem


def test_every_value_of_a_sweep_is_checked() -> None:
    assert check_overrides(CONF_DIR, ["model=resnet18,alexnet", "optim.lr=0.1,0.01"], "fit") is None
    problem = check_overrides(CONF_DIR, ["model=resnet18,alexnett"], "fit")
    assert problem is not None and "alexnett" in problem
