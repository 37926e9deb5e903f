"""What every subcommand builds the same way, seen through the CLI: `aug.mean_image=true` is computed for fit,
stored in the checkpoint, and all `eval` and `predict` need."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.conftest import FAST, make_imagefolder, read_results, run_cli

TINY = (*FAST, "model=small_cnn", "data.batch_size=4", "data.image_size=16", "aug.resize_size=16")


def test_mean_image_and_lighting_train_and_the_checkpoint_alone_evaluates_and_predicts(
    tmp_path: Path,
) -> None:
    data = make_imagefolder(tmp_path / "data")
    fit_dir = tmp_path / "fit"
    options = ("aug.mean_image=true", "aug.lighting=0.1", "trainer.epochs=1")
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={data}",
        *TINY,
        *options,
        f"hydra.run.dir={fit_dir}",
        cwd=tmp_path,
    )
    state = torch.load(fit_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["mean_image"].shape == (3, 16, 16) and len(list(data.glob("mean_image-16px-*.pt"))) == 1
    # eval and predict need the checkpoint only: the cached mean image and the training images are gone
    for path in [*data.glob("mean_image-*.pt"), data / "train"]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    eval_dir = tmp_path / "eval"
    run_cli("eval", f"ckpt={fit_dir}/checkpoints/last.ckpt", f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    fit, again = read_results(fit_dir), read_results(eval_dir)
    assert all(again[k] == fit[k] for k in ("top1_err", "top5_err", "loss"))
    predict_dir = tmp_path / "predict"
    run_cli(
        "predict",
        f"ckpt={fit_dir}/checkpoints/last.ckpt",
        f"inputs={data}/val/n01",
        f"hydra.run.dir={predict_dir}",
        cwd=tmp_path,
    )
    assert len(json.loads((predict_dir / "predictions.json").read_text())) == 4


def test_a_checkpoint_whose_builder_has_moved_since_still_evaluates(tmp_path: Path) -> None:
    # a checkpoint stores the resolved config, `_target_` included: the option's current YAML names the builder
    data = make_imagefolder(tmp_path / "data")
    fit_dir = tmp_path / "fit"
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={data}",
        *TINY,
        "trainer.epochs=1",
        f"hydra.run.dir={fit_dir}",
        cwd=tmp_path,
    )
    ckpt = fit_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state["config"]["data"]["_target_"] = (
        "cvtrain.data.imagefolder.build_imagefolder"  # before data/ had folders
    )
    torch.save(state, ckpt)
    eval_dir = tmp_path / "eval"
    run_cli("eval", f"ckpt={ckpt}", f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    assert read_results(eval_dir)["top1_err"] == read_results(fit_dir)["top1_err"]
