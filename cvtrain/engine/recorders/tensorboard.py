"""`logger=tensorboard`: TensorBoard event files in the run directory's tensorboard/."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


class TensorBoardRecorder:
    """Scalars under `train/` and `val/`, the plots/ pictures in the images tab, and at the end the config with the
    final metrics in the HParams tab (in the same event file: tensorboard/ stays one run)."""

    def __init__(self, *, run_dir: Path):
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        self.step = 0

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        self.step = step
        for name, value in values.items():
            if isinstance(value, float):  # an evaluation's epoch and step are its axis, not a curve
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        # TensorBoard takes numbers, strings and booleans; the metrics name the val/ curves already written.
        params = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in config.items()}
        for summary in hparams(params, {f"val/{k}": v for k, v in metrics.items()}):
            self.writer.file_writer.add_summary(summary, self.step)

    def close(self) -> None:
        self.writer.close()
