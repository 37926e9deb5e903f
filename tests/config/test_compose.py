"""The early override check composes from the search path Hydra's run would: `--config-dir`, `--config-path`,
`--config-name` and `hydra.searchpath` overrides, so a user's own configs are accepted and their typos caught."""

import shutil
from pathlib import Path

import pytest

from cvtrain.config.compose import CONF_DIR, override_key
from cvtrain.overrides import check_overrides
from tests.conftest import read_results, run_cli

MODEL = """\
defaults:
  - /schema/model/classifier@_here_
  - _self_
_target_: cvtrain.models.classification.build_classifier
name: tiny_cnn
arch: small_cnn
"""

EXPERIMENT = """\
# @package _global_
defaults:
  - override /data: synthetic
  - override /model: tiny_cnn
  - override /logger: [csv]
  - _self_
data:
  length: 8
  batch_size: 4
  num_workers: 0
  image_size: 16
trainer:
  epochs: 1
  device: cpu
  plots: false
"""


@pytest.fixture
def myconf(tmp_path: Path) -> Path:
    """A user's config folder: an experiment of their own, on a model option of their own."""
    (tmp_path / "myconf" / "model").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment").mkdir()
    (tmp_path / "myconf" / "model" / "tiny_cnn.yaml").write_text(MODEL)
    (tmp_path / "myconf" / "experiment" / "mine.yaml").write_text(EXPERIMENT)
    return tmp_path / "myconf"


def test_fit_runs_an_experiment_from_the_users_config_dir(myconf: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli("fit", "--config-dir", str(myconf), "+experiment=mine", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    results = read_results(run_dir)
    assert results["status"] == "ok" and results["epochs"] == 1
    assert "  name: tiny_cnn\n" in (run_dir / ".hydra" / "config.yaml").read_text()


@pytest.mark.parametrize("flag", [["--config-dir", "{dir}"], ["-cd", "{dir}"], ["--config-dir={dir}"]])
def test_every_spelling_of_config_dir_is_seen(flag: list[str], myconf: Path) -> None:
    args = [f.format(dir=myconf) for f in flag]
    assert check_overrides([*args, "+experiment=mine"], "fit") is None
    assert check_overrides(["+experiment=mine", *args, "model=tiny_cnn"], "fit") is None  # flags anywhere


def test_a_typo_in_a_users_option_is_caught_and_lists_their_options(myconf: Path) -> None:
    problem = check_overrides(["--config-dir", str(myconf), "model=tiny_cnnn"], "fit")
    assert problem is not None and problem.startswith("In 'config': Could not find 'model/tiny_cnnn'")
    assert "\ttiny_cnn\n" in problem and "\tresnet50\n" in problem  # theirs and cvtrain's
    problem = check_overrides(["--config-dir", str(myconf), "+experiment=minee"], "fit")
    assert problem is not None and "Could not find 'experiment/minee'" in problem and "\tmine\n" in problem
    assert check_overrides(["+experiment=mine"], "fit") is not None  # without the flag it is not there


def test_a_value_from_the_users_yaml_is_range_checked(myconf: Path) -> None:
    (myconf / "experiment" / "mine.yaml").write_text(EXPERIMENT.replace("batch_size: 4", "batch_size: 0"))
    problem = check_overrides(["--config-dir", str(myconf), "+experiment=mine"], "fit")
    assert problem == "data.batch_size=0 is out of range: data.batch_size must be >= 1."


def test_hydra_searchpath_overrides_are_seen(myconf: Path) -> None:
    searchpath = f"hydra.searchpath=[file://{myconf}]"
    assert check_overrides([searchpath, "+experiment=mine"], "fit") is None
    problem = check_overrides([searchpath, "model=tiny_cnnn"], "fit")
    assert problem is not None and "\ttiny_cnn\n" in problem


def test_config_path_and_config_name_choose_the_primary_config(tmp_path: Path) -> None:
    shutil.copytree(CONF_DIR, tmp_path / "conf")
    primary = (tmp_path / "conf" / "config.yaml").read_text()
    (tmp_path / "conf" / "small.yaml").write_text(primary.replace("model: small_cnn", "model: resnet18"))
    args = ["--config-path", str(tmp_path / "conf"), "--config-name", "small"]
    assert check_overrides([*args, "model.arch=resnet18"], "fit") is None
    problem = check_overrides([*args, "model.archh=x"], "fit")
    assert problem is not None and "valid keys of model" in problem and "stochastic_depth" in problem


def test_a_missing_config_dir_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("fit", "--config-dir", "nope", "+experiment=mine", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stdout == (
        f"cvtrain fit: --config-dir nope: {tmp_path / 'nope'} is not a folder; give the folder that holds your "
        "config groups (e.g. myconf, with myconf/experiment/mine.yaml)\n"
    )


def test_override_keys() -> None:
    assert [override_key(o) for o in ("optim=adamw", "+optim.lr=0.1", "++a.b=1", "~trainer.ema")] == [
        "optim", "optim.lr", "a.b", "trainer.ema",
    ]  # fmt: skip
