"""`cvtrain fit` as the composition root of the recorders: the `logger` list chosen on the command line decides
which files a run writes, and the TensorBoard recorder gets the config with the final metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.conftest import make_imagefolder, run_cli

TINY = (
    "trainer.device=cpu",
    "data.num_workers=0",
    "trainer.log_every=1",
    "trainer.epochs=1",
    "model=small_cnn",
)
ALWAYS = {".hydra", ".cvtrain.lock", "checkpoints", "cvtrain.log", "results.json"}


@pytest.mark.parametrize(
    ("choice", "recorded", "plots"),
    [
        ("logger=[tensorboard,csv]", {"tensorboard", "metrics.csv", "train_log.csv"}, {"curves.png"}),
        ("logger=none", set(), set()),  # no CSV logs: no curves
    ],
)
def test_the_logger_list_decides_what_a_fit_writes(
    tmp_path: Path, choice: str, recorded: set[str], plots: set[str]
) -> None:
    root = make_imagefolder(tmp_path / "imgs")
    run_dir = tmp_path / "run"
    args = ("data=imagefolder", f"data.root={root}", "data.batch_size=4", "data.image_size=16", *TINY)
    run_cli("fit", *args, choice, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert {p.name for p in run_dir.iterdir()} == ALWAYS | recorded | {"plots"}
    assert {p.name for p in (run_dir / "plots").iterdir()} == plots | {
        "confusion_matrix.png",
        "predictions.png",
    }
    if "tensorboard" in recorded:
        hparams = EventAccumulator(str(run_dir / "tensorboard")).Reload().PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
        assert start.session_start_info.hparams["model.name"].string_value == "small_cnn"
