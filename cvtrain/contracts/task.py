"""The Task contract: everything that differs between classification, segmentation and detection.

The engine only ever calls these methods; it knows nothing of labels, masks or boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.monitor import MonitorMode
from cvtrain.contracts.plots import Preview


class PredictionSink(Protocol):
    """Receives every evaluated batch and records one JSON record per image (it may write per-image files, e.g.
    PNG masks, as it goes). The engine gathers every process's `records` in rank order into `records` and calls
    `write()` once on rank 0, so a sink knows nothing of processes."""

    records: list[dict[str, Any]]

    def update(self, batch: Batch, predictions: Any) -> None: ...

    def write(self) -> None:
        """Write the summary file (predictions.json) of `records`."""


class Task(Protocol):
    name: str
    # The metric that picks best.ckpt and ranks sweep jobs, and whether lower or higher is better.
    monitor: str
    monitor_mode: MonitorMode

    def collate(self, samples: list[Any]) -> Batch: ...

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses of one batch; always contains "loss", the sum that is back-propagated."""

    def predict(self, model: nn.Module, batch: Batch) -> Any:
        """Model outputs in the form the task's evaluator and sinks consume (model already in eval mode)."""

    def evaluator(self, dataset: Any) -> Evaluator: ...

    def preview(self, batch: Batch, predictions: Any, limit: int) -> list[Preview]:
        """At most `limit` images of an evaluated batch drawn with their truth and prediction (predictions.png)."""

    def results_writer(self, dataset: Any, out_dir: Path) -> PredictionSink:
        """`cvtrain eval ... eval.save_predictions=true`: predictions of an annotated split, under `out_dir`."""

    def predict_writer(self, out_dir: Path) -> PredictionSink:
        """`cvtrain predict`: what the model sees in unannotated images (pictures and predictions.json)."""

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Any:
        """`cvtrain predict`: a rich summary table of what `predict_writer` recorded."""
