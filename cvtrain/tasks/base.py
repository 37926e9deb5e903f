"""The Task contract: everything that differs between classification, segmentation and detection.

The engine only ever calls these methods; it knows nothing of labels, masks or boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn

from cvtrain.data.batch import Batch
from cvtrain.metrics.base import Evaluator


class PredictionSink(Protocol):
    """Receives every evaluated batch (e.g. writes predictions.json or PNG masks); `close()` finishes it."""

    def update(self, batch: Batch, predictions: Any) -> None: ...

    def close(self) -> list[dict[str, Any]]:
        """Finish writing; return the JSON records written (one per image), the same on every rank."""


class Task(Protocol):
    name: str
    # The metric that picks best.ckpt and ranks sweep jobs, and whether lower or higher is better.
    monitor: str
    monitor_mode: Literal["min", "max"]

    def collate(self, samples: list[Any]) -> Batch: ...

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses of one batch; always contains "loss", the sum that is back-propagated."""

    def predict(self, model: nn.Module, batch: Batch) -> Any:
        """Model outputs in the form the task's evaluator and sinks consume (model already in eval mode)."""

    def evaluator(self, dataset: Any) -> Evaluator: ...

    def prediction_sink(self, dataset: Any, out_dir: Path) -> PredictionSink:
        """Writes `cvtrain eval ... eval.save_predictions=true` output under `out_dir`."""

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> None:
        """`cvtrain predict`: print a summary table of what `prediction_sink` wrote."""
