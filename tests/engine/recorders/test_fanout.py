"""The recorders of the `logger` list, built from the config, behind one object the loop writes to; a tiny fit
writes exactly the chosen recorders' files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvtrain.engine.loop import fit
from cvtrain.engine.recorders.console import ConsoleRecorder
from cvtrain.engine.recorders.csv_files import CsvRecorder
from cvtrain.engine.recorders.fanout import Recorders, build_recorders, flatten
from cvtrain.engine.recorders.tensorboard import TensorBoardRecorder
from cvtrain.engine.reporting import NO_PROGRESS
from cvtrain.engine.state import FitProgress
from tests.conftest import compose_config
from tests.engine.test_loop import make_run


class Calls:
    def __init__(self, name: str, log: list[tuple[str, str]]):
        self.name, self.log = name, log

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        self.log.append((self.name, f"scalars {prefix} {step}"))

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.log.append((self.name, f"image {tag}"))

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        self.log.append((self.name, f"hyperparameters {sorted(config)}"))

    def close(self) -> None:
        self.log.append((self.name, "close"))


def test_every_call_reaches_every_recorder_in_order() -> None:
    log: list[tuple[str, str]] = []
    recorders = Recorders([Calls("a", log), Calls("b", log)])
    recorders.scalars("train", {"loss": 1.0}, 3)
    recorders.image("plots/curves", np.zeros((2, 2, 3), dtype=np.uint8), 3)
    recorders.hyperparameters({"optim.lr": 0.1}, {"mse": 1.0})
    recorders.close()
    calls = ["scalars train 3", "image plots/curves", "hyperparameters ['optim.lr']", "close"]
    assert log == [(name, call) for call in calls for name in "ab"]


def test_the_chosen_recorders_are_built_with_the_run_directory(tmp_path: Path) -> None:
    recorders = build_recorders(compose_config().logger, tmp_path)
    assert [type(r) for r in recorders.recorders] == [TensorBoardRecorder, CsvRecorder, ConsoleRecorder]
    assert recorders.progress is recorders.recorders[2].progress
    recorders.close()
    chosen = build_recorders(compose_config("logger=[csv]").logger, tmp_path)
    assert [type(r) for r in chosen.recorders] == [CsvRecorder] and chosen.progress is NO_PROGRESS


def test_flatten_joins_nested_keys_with_dots() -> None:
    assert flatten({"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 0}) == {
        "optim.lr": 0.1,
        "optim.betas": [0.9, 0.99],
        "seed": 0,
    }


@pytest.mark.parametrize(
    ("choice", "written"),
    [
        ("logger=[tensorboard,csv]", ["checkpoints", "metrics.csv", "tensorboard", "train_log.csv"]),
        ("logger=[csv]", ["checkpoints", "metrics.csv", "train_log.csv"]),
        ("logger=[tensorboard]", ["checkpoints", "tensorboard"]),
        ("logger=none", ["checkpoints"]),
    ],
)
def test_a_fit_writes_exactly_the_chosen_recorders_files(
    tmp_path: Path, choice: str, written: list[str]
) -> None:
    run = make_run(tmp_path, epochs=2)
    run.recorder = build_recorders(compose_config(choice).logger, tmp_path)
    fit(run, FitProgress())
    run.recorder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == written
