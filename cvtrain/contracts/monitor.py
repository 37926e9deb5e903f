"""Which way a metric improves: the one rule used for best.ckpt, the task's headline and sweep rankings."""

from __future__ import annotations

import math
from typing import Literal

MonitorMode = Literal["min", "max"]


def monitor_mode(metric: str) -> MonitorMode:
    """ "min" for errors and losses (`top1_err`, `loss`, `val_loss`), "max" for everything else (`map`, `miou`)."""
    return "min" if metric.endswith(("err", "loss")) else "max"


def improves(value: float, best: float | None, mode: MonitorMode) -> bool:
    """Whether `value` beats `best` (None: nothing yet) in direction `mode`; NaN never does."""
    if math.isnan(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)
