"""The recipe table `fit` prints first: the lr's scaling written out, and where each value came from."""

from __future__ import annotations

from pathlib import Path

from cvtrain.config.provenance import ConfigFile, Provenance
from cvtrain.engine.recipe import recipe_rows
from tests.conftest import FAST, compose_config, run_cli


def test_the_recipe_table_writes_the_scaling_out_and_names_each_source() -> None:
    cfg = compose_config(
        "model=faster_rcnn", "data=voc", "data.root=VOCdevkit", "data.batch_size=4", "trainer.epochs=2"
    )
    model = ConfigFile(keys=(), groups=("optim", "sched", "aug", "trainer"))
    provenance = Provenance.of(
        ["model=faster_rcnn", "data=voc", "trainer.epochs=2"], experiment=None, model=model
    )
    rows = {name: (value, source) for name, value, source in recipe_rows(cfg, provenance)}
    assert rows["lr"] == ("0.005 = 0.02 × 4 / 16", "model recipe")
    assert rows["optimizer"] == ("sgd, momentum 0.9, weight decay 0.0001 (every parameter)", "model recipe")
    assert rows["schedule"] == ("multistep × 0.1 at epochs 16, 22", "model recipe")
    assert rows["warm-up"] == ("1000 steps (at most the first epoch) from 0.001 × lr", "model recipe")
    assert rows["epochs"] == ("2", "command line")
    assert rows["EMA"] == ("off", "model recipe")
    # the model, chosen on the command line, resizes inside
    assert rows["image size"] == (
        "resized inside the model (torchvision's sizes for the backbone)",
        "command line",
    )


def test_fit_prints_the_recipe_first_with_the_command_lines_values_named(tmp_path: Path) -> None:
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "short.yaml").write_text(
        "# @package _global_\ntrainer:\n  epochs: 1\n"
    )
    run = (
        "fit", "--config-dir", str(tmp_path / "myconf"), "+experiment=short", "model=small_cnn", "data=synthetic",
        "data.length=8", "data.batch_size=4", "data.image_size=16", "optim.base_batch=16", "trainer.max_steps=1",
        "logger=[csv,console]", "trainer.plots=false", f"hydra.run.dir={tmp_path / 'run'}", *FAST,
    )  # fmt: skip
    out = run_cli(*run, cwd=tmp_path).stdout
    assert out.index("recipe") < out.index("fit small_cnn on synthetic")
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    assert "0.025 = 0.1 × 4 / 16" in lines["lr"] and "command line" in lines["lr"]
    assert "cosine to 0 × lr" in lines["schedule"] and "default" in lines["schedule"]
    assert " 1 " in lines["epochs"] and "experiment" in lines["epochs"]
    assert "16" in lines["image size"] and "command line" in lines["image size"]
