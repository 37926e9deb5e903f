"""The evaluator contract shared by every metric family."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import PlotData


class Evaluator(ABC):
    """Accumulates predictions over a split and turns them into named floats.

    The engine calls `reset()`, then `update(batch, predictions)` for every batch, then, in a distributed run,
    `merge(other)` with each other rank's evaluator (gathered by `engine/distributed.py`), then `compute()`.
    Metric names are documented and stable (`top1_err`, `miou`, `map`, `voc_map`, ...).
    """

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def update(self, batch: Batch, predictions: Any) -> None: ...

    @abstractmethod
    def merge(self, other: Evaluator) -> None:
        """Fold the state of `other` (the same evaluator on another rank) into this one."""

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    def report(self) -> Any | None:
        """An optional rich renderable (e.g. a per-class table) shown after `compute()`."""
        return None

    def plot_data(self) -> PlotData:
        """What to draw after `compute()` (a confusion matrix, precision-recall curves); nothing by default."""
        return PlotData()
