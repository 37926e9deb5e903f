"""logger=tensorboard: train/ and val/ scalars, the plots/ pictures and, at the end, the config with the final
metrics, all in one event file under tensorboard/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cvtrain.engine.recorders.tensorboard import TensorBoardRecorder


def test_scalars_images_and_hyperparameters_land_in_one_event_file(tmp_path: Path) -> None:
    recorder = TensorBoardRecorder(run_dir=tmp_path)
    recorder.scalars("train", {"loss": 0.5, "lr": 0.1, "images_per_s": 40.0}, 4)
    recorder.scalars("val", {"epoch": 1, "step": 8, "top1_err": 0.25}, 8)  # epoch and step are the axis
    recorder.image("plots/curves", np.zeros((6, 8, 3), dtype=np.uint8), 8)
    recorder.hyperparameters(
        {"optim.lr": 0.1, "model.name": "resnet18", "aug.hsv": None, "x": [1, 2]}, {"top1_err": 0.25}
    )
    recorder.close()

    assert len(list((tmp_path / "tensorboard").iterdir())) == 1  # one run, not a folder per call
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "train/lr", "train/images_per_s", "val/top1_err"}
    assert [(e.step, e.value) for e in events.Scalars("val/top1_err")] == [(8, 0.25)]
    assert [e.step for e in events.Images("plots/curves")] == [8]
    hparams = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
    params = session.session_start_info.hparams
    assert params["optim.lr"].number_value == 0.1 and params["model.name"].string_value == "resnet18"
    assert params["aug.hsv"].string_value == "None" and params["x"].string_value == "[1, 2]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["val/top1_err"]  # the curve already written
