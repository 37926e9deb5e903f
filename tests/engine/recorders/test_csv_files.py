"""logger=csv: train_log.csv gets the train scalars, metrics.csv a row per evaluation with the data-wait share
of the epoch before it; nothing else is written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cvtrain.engine.recorders.csv_files import CsvRecorder


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_train_and_evaluation_rows_go_to_their_files(tmp_path: Path) -> None:
    recorder = CsvRecorder(run_dir=tmp_path)
    recorder.scalars("val", {"epoch": 0, "step": 0, "mse": 2.0}, 0)  # before any epoch (a resumed evaluation)
    recorder.scalars("train", {"loss": 0.5, "lr": 0.1, "images_per_s": 40.0}, 4)
    recorder.scalars("train", {"data_wait_share": 0.25}, 8)  # the epoch's end
    recorder.scalars("val", {"epoch": 1, "step": 8, "mse": 1.0}, 8)
    recorder.image("plots/curves", np.zeros((4, 4, 3), dtype=np.uint8), 8)
    recorder.hyperparameters({"optim.lr": 0.1}, {"mse": 1.0})
    recorder.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "train_log.csv"]
    assert _rows(tmp_path / "train_log.csv") == [
        {"step": "4", "loss": "0.5", "lr": "0.1", "images_per_s": "40.0", "data_wait_share": ""},
        {"step": "8", "loss": "", "lr": "", "images_per_s": "", "data_wait_share": "0.25"},
    ]
    assert _rows(tmp_path / "metrics.csv") == [
        {"epoch": "0", "step": "0", "mse": "2.0", "data_wait_share": ""},
        {"epoch": "1", "step": "8", "mse": "1.0", "data_wait_share": "0.25"},
    ]
