"""The run's `plots/` folder, refreshed after every evaluation on rank 0 (`trainer.plots`), and the same pictures
to the recorders (TensorBoard's images tab) as `plots/<name>`:

- `curves.png`: train losses and learning rate (`train_log.csv`) and every metric (`metrics.csv`) over steps
  (those files are the `csv` recorder's: without it, no curves);
- `confusion_matrix.png`, `pr_curve.png`: from the evaluator's `plot_data()` (when it has them);
- `predictions.png`: validation images spread over the set, as the task's outputs draw them (truth next to
  prediction).
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.outputs import PredictionOutputs
from cvtrain.contracts.plots import Preview
from cvtrain.contracts.recorder import Recorder
from cvtrain.plots import figures
from cvtrain.plots.draw import tile_previews

log = logging.getLogger(__name__)

PREVIEW_IMAGES = 8


class PreviewCollector:
    """The task outputs' drawings of `limit` images spread over an evaluation of `batches` batches (a validation
    set sorted by class still shows several classes): the first images of evenly spaced batches, the same ones at
    every evaluation."""

    def __init__(self, outputs: PredictionOutputs, batches: int, limit: int = PREVIEW_IMAGES):
        self.outputs = outputs
        spaced = np.linspace(0, max(batches - 1, 0), num=limit).round().astype(int).tolist()
        self.wanted = Counter(spaced)  # batch index -> images to take from it
        self.seen = 0
        self.previews: list[Preview] = []

    def add(self, batch: Batch, predictions: Any) -> None:
        take = self.wanted.get(self.seen, 0)
        self.seen += 1
        if take:
            self.previews += self.outputs.preview(batch, predictions, take)[:take]


def read_rows(path: Path) -> list[dict[str, float]]:
    """A CSV of numbers as rows of floats (empty cells left out), by step. Of rows with the same step and the same
    filled columns (a resumed run repeated it), the last one; rows of other columns at that step are kept (the
    losses and the epoch's data-wait share of train_log.csv)."""
    if not path.is_file():
        return []
    rows: dict[tuple[float, frozenset[str]], dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            if "step" in values:
                rows[values["step"], frozenset(values)] = values
    return sorted(rows.values(), key=lambda r: r["step"])


class RunPlots:
    """Writes the pictures of a run (see the module doc); made on rank 0 only."""

    def __init__(self, run_dir: Path, recorder: Recorder, outputs: PredictionOutputs):
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "plots"
        self.recorder = recorder
        self.outputs = outputs

    def collector(self, batches: int) -> PreviewCollector:
        return PreviewCollector(self.outputs, batches)

    def write(self, evaluator: Evaluator | None, collector: PreviewCollector | None, step: int) -> list[Path]:
        """Draw every picture; a failure to draw is a warning, never the end of a training run."""
        started = time.perf_counter()
        try:
            written = self._write(evaluator, collector, step)
        except Exception as e:  # noqa: BLE001 - the pictures must not cost the run
            log.warning("plots in %s not refreshed: %s: %s", self.folder, type(e).__name__, e)
            return []
        log.debug("%d plots written in %.0f ms", len(written), 1000 * (time.perf_counter() - started))
        return written

    def _write(
        self, evaluator: Evaluator | None, collector: PreviewCollector | None, step: int
    ) -> list[Path]:
        pictures = {}
        train, evaluations = (
            read_rows(self.run_dir / "train_log.csv"),
            read_rows(self.run_dir / "metrics.csv"),
        )
        if train or evaluations:  # the CSV recorder's files: no curves without it
            pictures["curves"] = figures.render(figures.curves_figure(train, evaluations))
        data = evaluator.plot_data() if evaluator is not None else None
        if data is not None and data.confusion is not None:
            pictures["confusion_matrix"] = figures.render(figures.confusion_figure(data.confusion))
        if data is not None and data.pr_curves:
            pictures["pr_curve"] = figures.render(figures.pr_figure(data.pr_curves, data.pr_title))
        if collector is not None and collector.previews:
            columns = 4 if len(collector.previews[0].panels) == 1 else 2
            pictures["predictions"] = tile_previews(collector.previews, columns)
        written = []
        for name, image in pictures.items():
            path = self.folder / f"{name}.png"
            figures.save_png(image, path)
            self.recorder.image(f"plots/{name}", image, step)
            written.append(path)
        return written
