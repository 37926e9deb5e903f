"""What does refreshing a run's plots/ cost after each evaluation?

Times `RunPlots.write` (curves.png, confusion_matrix.png, pr_curve.png, predictions.png, as `cvtrain fit` draws
them) on synthetic inputs the size of a real run: 200 logged train steps with 5 losses, 20 evaluations with COCO's and
VOC's 14 metrics, 8 previews of two 256 px panels, and a confusion matrix and PR curves of `--classes` classes.
Prints the wall and CPU time of each picture and of the whole refresh (best of `--repeat`, after a warm-up).

    .venv/bin/python scripts/bench_plots.py --classes 5
    .venv/bin/python scripts/bench_plots.py --classes 80
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from cvtrain.contracts.plots import ConfusionData, Panel, PlotData, PRCurve, Preview
from cvtrain.engine.plotting import PreviewCollector, RunPlots, read_rows
from cvtrain.engine.recorders.fanout import Recorders
from cvtrain.plots import figures
from cvtrain.plots.draw import tile_previews

LOSSES = ("loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
METRICS = (
    "voc_map", "voc07_map", "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


class SyntheticEvaluator:
    def __init__(self, classes: int, rng: np.random.Generator):
        counts = np.diag(rng.integers(50, 100, classes + 1)) + rng.integers(0, 5, (classes + 1, classes + 1))
        names = [f"class {i}" for i in range(classes)] + ["background"]
        recall = np.linspace(0.0, 0.9, 300)
        curves = [
            PRCurve(n, recall, np.clip(1 - recall * rng.uniform(0.3, 1), 0, 1), 0.6) for n in names[:-1]
        ]
        self.data = PlotData(ConfusionData(counts, names, "boxes"), curves, "precision-recall")

    def plot_data(self) -> PlotData:
        return self.data


def write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def timed(fn, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeat` calls."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write_csv(run_dir / "train_log.csv", [
            {"step": s, **{k: float(rng.random()) for k in LOSSES}, "lr": 0.01, "images_per_s": 100.0}
            for s in range(1, 201)
        ])  # fmt: skip
        write_csv(run_dir / "metrics.csv", [
            {"epoch": e, "step": 10 * e, **{k: float(rng.random()) for k in METRICS}} for e in range(1, 21)
        ])  # fmt: skip
        evaluator = SyntheticEvaluator(args.classes, rng)
        collector = PreviewCollector(task=None, batches=1)  # type: ignore[arg-type]
        panel = Panel(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), "image.jpg: truth")
        collector.previews = [Preview((panel, panel))] * 8
        plots = RunPlots(run_dir, Recorders([]), task=None)  # type: ignore[arg-type]
        train, evaluations = read_rows(run_dir / "train_log.csv"), read_rows(run_dir / "metrics.csv")
        data = evaluator.plot_data()
        parts = {
            "curves": lambda: figures.render(figures.curves_figure(train, evaluations)),
            "confusion_matrix": lambda: figures.render(figures.confusion_figure(data.confusion)),
            "pr_curve": lambda: figures.render(figures.pr_figure(data.pr_curves, data.pr_title)),
            "predictions": lambda: tile_previews(collector.previews, 2),
            "all four, written": lambda: plots.write(evaluator, collector, step=1),  # type: ignore[arg-type]
        }
        plots.write(evaluator, collector, step=1)  # warm-up: imports, font cache
        for name, fn in parts.items():
            wall, cpu = timed(fn, args.repeat)
            print(f"{name:18s} wall {1000 * wall:6.0f} ms   cpu {1000 * cpu:6.0f} ms")


if __name__ == "__main__":
    main()
