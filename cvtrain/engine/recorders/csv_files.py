"""`logger=csv`: metrics.csv and train_log.csv in the run directory (what plots/curves.png is drawn from)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.engine.csv_log import CsvLog


class CsvRecorder:
    """train_log.csv: a row per logged step (losses, lr, images_per_s) and one per epoch (its data-wait share).
    metrics.csv: a row per evaluation (epoch, step, metrics) with the data-wait share of the epoch before it.
    Each CSV has one header (`CsvLog`); a resumed run appends to them."""

    def __init__(self, *, run_dir: Path):
        self.metrics_csv = CsvLog(Path(run_dir) / "metrics.csv")
        self.train_csv = CsvLog(Path(run_dir) / "train_log.csv")
        self.data_wait_share: float | None = None  # of the last epoch trained by this process

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        if prefix == "train":
            self.train_csv.append({"step": step, **values})
            self.data_wait_share = values.get("data_wait_share", self.data_wait_share)
        elif prefix == "val":
            self.metrics_csv.append({**values, "data_wait_share": self.data_wait_share})

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        pass  # the pictures are files in plots/ already

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        pass  # the run directory holds the config (.hydra/) and results.json already

    def close(self) -> None:
        pass  # every row is written as it comes
