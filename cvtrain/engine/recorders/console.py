"""`logger=console`: what the rich console shows beside the log lines: progress bars (on a terminal, rank 0)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.engine.meters import rate_text
from cvtrain.engine.reporting import NO_PROGRESS, TrainProgress


class ConsoleRecorder:
    """A bar over an epoch's steps and one over an evaluation's batches (`progress`); the bar of a training epoch
    shows the last logged loss, lr and throughput. The step and evaluation log lines are the loop's (the run's
    log file has them with or without this recorder)."""

    def __init__(self, *, run_dir: Path | None = None, progress: bool = True):
        self.progress = TrainProgress(progress)

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        if prefix == "train" and "loss" in values:
            self.progress.show_stats(
                f"loss={values['loss']:.4f} lr={values['lr']:.3g} {rate_text(values['images_per_s'])}"
            )

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        pass

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        self.progress.stop()


def progress_bar(logger: Mapping[str, Any]) -> TrainProgress:
    """eval and predict: the bar of `logger.console` when the command has that recorder (fit gets its recorder's)."""
    console = logger.get("console")
    return TrainProgress(console.progress) if console is not None else NO_PROGRESS
