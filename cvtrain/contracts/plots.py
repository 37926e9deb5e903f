"""What evaluators and tasks hand to the plotting code: plain arrays and drawn pictures, no figures.

Metrics say what to plot (`PlotData`: a confusion matrix, precision-recall curves), tasks draw a few validation
images with what the model predicted (`Preview`); `cvtrain/plots/` turns both into PNG files, and the engine
decides when, so no layer needs to know another's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ConfusionData:
    """counts[i, j]: how often truth `names[i]` was predicted as `names[j]` (rows truth, columns prediction).

    Detection adds a last "background" name: its row counts detections of nothing (false positives), its column
    objects nothing detected (missed)."""

    counts: np.ndarray
    names: list[str]
    title: str


@dataclass(frozen=True)
class PRCurve:
    """One class's precision at each recall, as the evaluator accumulated them, and its AP."""

    name: str
    recall: np.ndarray
    precision: np.ndarray
    ap: float


@dataclass
class PlotData:
    """What an evaluator can show after `compute()`; empty when it has nothing to plot."""

    confusion: ConfusionData | None = None
    pr_curves: list[PRCurve] = field(default_factory=list)
    pr_title: str = ""

    def merged(self, other: PlotData) -> PlotData:
        """The first evaluator's plots win where both have one (VOC curves before COCO's)."""
        return PlotData(
            confusion=self.confusion or other.confusion,
            pr_curves=self.pr_curves or other.pr_curves,
            pr_title=self.pr_title if self.pr_curves else other.pr_title,
        )


@dataclass(frozen=True)
class Panel:
    """A drawn picture (uint8 RGB [H, W, 3]) and the heading written above it."""

    image: np.ndarray
    heading: str
    ok: bool | None = None  # a right (green) or wrong (red) prediction; None: neutral heading


@dataclass(frozen=True)
class Preview:
    """One validation image as the task shows it: its panels side by side (e.g. truth, then prediction)."""

    panels: tuple[Panel, ...]
