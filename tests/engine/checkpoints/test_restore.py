"""Restoring a checkpoint into the network this run builds: a checkpoint of another architecture is one line
naming the checkpoint, the model it was trained as, the override that conflicts and the first tensor that differs."""

from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, run_cli, write_image

TINY = (
    *FAST,
    "data=synthetic",
    "data.length=8",
    "data.image_size=32",
    "data.batch_size=4",
    "trainer.epochs=1",
)
QUIET = ("logger=[csv,console]", "trainer.plots=false")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a one-epoch resnet18 fit."""
    run_dir = tmp_path_factory.mktemp("fit")
    run_cli("fit", "model=resnet18", *TINY, *QUIET, f"hydra.run.dir={run_dir}", cwd=run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


def _one_line_error(proc, tmp_path: Path) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "size mismatch" not in proc.stdout + proc.stderr
    return " ".join((proc.stdout + proc.stderr).split())  # rich may wrap the log line


def _another_model(ckpt: Path) -> str:
    return (
        f"checkpoint {ckpt} was trained as model=resnet18 (model.arch=resnet18); the override model=resnet50 "
        "builds a different network (layer1.0.conv1.weight is [64, 64, 3, 3] in the checkpoint, [64, 64, 1, 1] "
        "in this network; 222 tensors differ). Drop the override or pass a checkpoint of resnet50."
    )


@pytest.mark.parametrize("command", ["eval", "export", "predict"])
def test_a_checkpoint_restored_as_another_model_names_the_conflict(
    command: str, resnet18: Path, tmp_path: Path
) -> None:
    extra = [f"inputs={write_image(tmp_path / 'in' / 'a.jpg')}"] if command == "predict" else []
    proc = run_cli(command, f"ckpt={resnet18}", "model=resnet50", *extra, *FAST, cwd=tmp_path, check=False)
    assert _another_model(resnet18) in _one_line_error(proc, tmp_path)


def test_resuming_a_fit_as_another_model_names_the_conflict(resnet18: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "fit", "model=resnet50", *TINY, *QUIET, f"trainer.resume={resnet18}", cwd=tmp_path, check=False
    )
    assert _another_model(resnet18) in _one_line_error(proc, tmp_path)


def test_a_model_option_that_changes_the_network_is_named(resnet18: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", f"ckpt={resnet18}", "model.arch=resnet34", *FAST, cwd=tmp_path, check=False)
    assert (
        f"checkpoint {resnet18} was trained as model=resnet18 with model.arch=resnet18; the override "
        "model.arch=resnet34 builds a different network (this network has layer1.2.conv1.weight, which the "
        "checkpoint lacks; 96 tensors differ). Drop the override or pass a checkpoint trained with it."
    ) in _one_line_error(proc, tmp_path)


def test_weights_that_do_not_fit_without_any_override_name_the_first_difference(
    resnet18: Path, tmp_path: Path
) -> None:
    """A checkpoint whose class list was edited: the classifier built for 4 classes cannot take 3 classes' weights."""
    state = torch.load(resnet18, weights_only=True)
    state["class_names"] = [*state["class_names"][:3], "extra"]
    edited = tmp_path / "edited.ckpt"
    torch.save(state, edited)
    proc = run_cli("export", f"ckpt={edited}", *FAST, cwd=tmp_path, check=False)
    assert (
        f"the weights of checkpoint {edited} do not fit the network model=resnet18 builds here (fc.weight is "
        "[10, 512] in the checkpoint, [4, 512] in this network; 2 tensors differ)"
    ) in _one_line_error(proc, tmp_path)
