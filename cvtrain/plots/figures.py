"""The figures of a run's `plots/` folder, drawn on matplotlib's Agg canvas.

Figures are built with the object API (`matplotlib.figure.Figure` on a `FigureCanvasAgg`), never through pyplot:
nothing is shown, no figure is registered globally, and each one is freed with its last reference, so refreshing
the plots at every evaluation does not grow memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless, also for any pyplot user in this process
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from cvtrain.contracts.plots import ConfusionData, PRCurve  # noqa: E402
from cvtrain.files import atomic_write  # noqa: E402

Rows = Sequence[Mapping[str, float]]
ANNOTATE_UP_TO = 21  # classes (VOC's 20 and background): beyond this, confusion cells carry no numbers
NAMES_UP_TO = 100  # classes: beyond this (ImageNet), the confusion matrix's axes show class indices
LEGEND_UP_TO = 20  # classes: beyond this, PR curves are grey lines without a legend entry each


def render(figure: Figure) -> np.ndarray:
    """The figure's pixels, uint8 RGB [H, W, 3]."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(image: np.ndarray, path: Path) -> None:
    """Write atomically: a reader (TensorBoard, an image viewer) never sees half a file."""
    with atomic_write(path) as f:
        Image.fromarray(image).save(f, format="PNG", compress_level=1)  # fast: redrawn at every evaluation
    path.chmod(0o644)  # the temporary file was private; pictures are for everyone who reads the run


def _is_loss(name: str) -> bool:
    """Train columns that are losses: not the step, learning rate, or speeds and times (`*_per_s`, `*_s`)."""
    return name not in ("step", "epoch", "lr") and not name.endswith("_s")


def _family(metric: str) -> str:
    """Metrics drawn in one panel share the name's first word, digits aside, and whether they are an error or an
    accuracy (one falls as the other rises): map, map_50 -> "map"; voc_map, voc07_map -> "voc"; top1_err,
    top5_err -> "top err"; top1_acc, top5_acc -> "top acc"."""
    family = metric.split("_")[0].rstrip("0123456789")
    kind = metric.rpartition("_")[2]
    return f"{family} {kind}" if kind in ("err", "acc") and family != metric else family


def _y_axis(axes: Any, values: list[np.ndarray]) -> None:
    """Plain tick labels (no offset such as "+3.37e-3" above the axis) and, for values that are never negative
    (losses, rates, AP, accuracy), an axis from 0: a change from 0.00337 to 0.00340 stays the flat line it is,
    not a cliff across the panel."""
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size and finite.min() >= 0:
        axes.set_ylim(bottom=0, top=max(float(finite.max()) * 1.08, 1e-12))


def _series(rows: Rows, name: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(r[x], r[name]) for r in rows if r.get(name) is not None and math.isfinite(r[name]) and x in r]
    xs, values = zip(*points, strict=True) if points else ((), ())
    return np.asarray(xs, dtype=float), np.asarray(values, dtype=float)


def curves_figure(train: Rows, evaluations: Rows) -> Figure:
    """Train losses and the learning rate at every logged optimizer step, and the evaluation metrics by epoch,
    one panel per family of metrics (e.g. every `map_*`). Metrics that are always -1 (pycocotools' "no object
    of that size") are left out."""
    # The columns of the rows that carry the loss: train_log.csv's other rows (an epoch's data-wait share) are not
    losses = [k for k in dict.fromkeys(k for r in train if "loss" in r for k in r) if _is_loss(k)]
    metrics = [
        k
        for k in dict.fromkeys(k for r in evaluations for k in r)
        if k not in ("step", "epoch") and any(r.get(k) not in (None, -1.0) for r in evaluations)
    ]
    panels: dict[str, tuple[Rows, str, list[str]]] = {}
    if losses:
        panels["train losses"] = (train, "step", losses)
    if any("lr" in r for r in train):
        panels["learning rate"] = (train, "step", ["lr"])
    for metric in metrics:
        panels.setdefault(_family(metric), (evaluations, "epoch", []))[2].append(metric)
    columns = min(4, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    width, height = 3.6 * columns, 2.6 * rows
    figure = Figure(figsize=(width, height), dpi=100)
    # Fixed margins (inches): the panels are alike, and constrained layout would double the cost of the figure.
    figure.subplots_adjust(
        left=0.6 / width,
        right=1 - 0.15 / width,
        bottom=0.45 / height,
        top=1 - 0.3 / height,
        wspace=0.4,  # room for each panel's y labels (3 significant digits: "0.00337")
        hspace=0.5,
    )
    for index, (title, (source, x, names)) in enumerate(panels.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        dots = {"marker": "o", "markersize": 3} if len(source) < 30 else {}
        series = [_series(source, name, x) for name in names]
        for name, (xs, ys) in zip(names, series, strict=True):
            axes.plot(xs, ys, label=name, linewidth=1, **dots)
        _y_axis(axes, [ys for _, ys in series])
        if len(names) > 1:
            axes.legend(fontsize=7)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel(x, fontsize=8)
        if x == "epoch":
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    if not panels:
        figure.text(0.5, 0.5, "nothing recorded yet", ha="center")
    return figure


def confusion_figure(data: ConfusionData) -> Figure:
    """Each row (a true class) normalised to sum 1; class names on both axes, the share in each cell."""
    counts = np.asarray(data.counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, counts / totals, np.nan)
    n = len(data.names)
    # cells big enough for their number (0.45 in, up to VOC's 21 classes) or at least for a class name's height
    # (0.2 in: COCO's 80 classes): the figure grows with the classes, the text does not shrink
    cell = 0.45 if n <= ANNOTATE_UP_TO else 0.2
    side = min(20.0, max(5.0, cell * n + 2.5))
    cell_pt = 72 * (side - 2.5) / max(n, 1)  # the size of a cell, in points
    figure = Figure(figsize=(side + 1.2, side), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    font = max(4.0, min(8.0, 0.6 * cell_pt))
    if n <= NAMES_UP_TO:
        axes.set_xticks(range(n), data.names, rotation=90, fontsize=font)
        axes.set_yticks(range(n), data.names, fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    names = "" if n <= NAMES_UP_TO else ", class indices"
    axes.set_title(f"{data.title} ({int(counts.sum())} in all{names})", fontsize=10)
    if n <= ANNOTATE_UP_TO:  # each number is a text to lay out: the slow part of the figure
        for i, j in zip(*np.nonzero(np.nan_to_num(shares) >= 0.005), strict=True):
            value = shares[i, j]
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=min(8.0, 0.3 * cell_pt),
                      color="white" if value > 0.6 else "black")  # fmt: skip
    return figure


def envelope_at(curve: PRCurve, recall_points: np.ndarray) -> np.ndarray:
    """The best precision at recall >= r for each r (COCO's interpolation), 0 beyond the last recall reached."""
    recall = np.asarray(curve.recall, dtype=np.float64)
    if recall.size == 0:  # no detection of the class
        return np.zeros_like(recall_points, dtype=np.float64)
    precision = np.maximum.accumulate(np.asarray(curve.precision, dtype=np.float64)[::-1])[::-1]
    at = np.searchsorted(recall, recall_points, side="left")
    return np.where(at < recall.size, precision[np.minimum(at, recall.size - 1)], 0.0)


def pr_figure(curves: Sequence[PRCurve], title: str) -> Figure:
    """Precision against recall for each class (AP in the legend) and their mean, thick."""
    scored = [c for c in curves if math.isfinite(c.ap)]
    figure = Figure(figsize=(7.5, 5.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    legend = len(scored) <= LEGEND_UP_TO
    for curve in scored:
        axes.plot(curve.recall, curve.precision, linewidth=1,
                  **({"label": f"{curve.name} {curve.ap:.3f}"} if legend else {"color": "grey", "alpha": 0.5}))  # fmt: skip
    if scored:
        grid = np.linspace(0, 1, 101)
        mean = np.mean([envelope_at(c, grid) for c in scored], axis=0)
        mean_ap = float(np.mean([c.ap for c in scored]))
        axes.plot(grid, mean, linewidth=3, color="tab:blue", label=f"all classes {mean_ap:.3f} mAP@0.5")
        axes.legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0))
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    return figure
