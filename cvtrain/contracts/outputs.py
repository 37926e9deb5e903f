"""How a task's predictions reach people and files: pictures, tables and prediction writers.

The task turns batches into losses and predictions (`cvtrain/contracts/task.py`); its `PredictionOutputs`, built
beside it by the composition root, draws those predictions (predictions.png), writes them (predictions.json and
per-image files) and tabulates them for the console (`cvtrain predict`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import Preview


class PredictionSink(Protocol):
    """Receives every evaluated batch and records one JSON record per image (it may write per-image files, e.g.
    PNG masks, as it goes). The engine gathers every process's `records` in rank order into `records` and calls
    `write()` once on rank 0, so a sink knows nothing of processes."""

    records: list[dict[str, Any]]

    def update(self, batch: Batch, predictions: Any) -> None: ...

    def write(self) -> None:
        """Write the summary file (predictions.json) of `records`."""


class PredictionOutputs(Protocol):
    def preview(self, batch: Batch, predictions: Any, limit: int) -> list[Preview]:
        """At most `limit` images of an evaluated batch drawn with their truth and prediction (predictions.png)."""

    def results_writer(self, dataset: Any, out_dir: Path) -> PredictionSink:
        """`cvtrain eval ... eval.save_predictions=true`: predictions of an annotated split, under `out_dir`."""

    def predict_writer(self, out_dir: Path) -> PredictionSink:
        """`cvtrain predict`: what the model sees in unannotated images (pictures and predictions.json)."""

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Any:
        """`cvtrain predict`: a rich summary table of what `predict_writer` recorded."""
