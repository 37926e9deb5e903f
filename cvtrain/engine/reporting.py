"""What a run shows and records: the rich console, progress bar, metrics tables, metrics.csv and TensorBoard.

Only rank 0 reports; on other ranks every object here is inert.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cvtrain.engine import distributed

log = logging.getLogger("cvtrain")
console = Console()


def format_value(value: float | int | str) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def metrics_table(metrics: Mapping[str, Any], title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, format_value(value))
    return table


def show(renderable: Any) -> None:
    if distributed.is_main() and renderable is not None:
        console.print(renderable)


def write_json(path: Path, obj: Any) -> None:
    if distributed.is_main():
        Path(path).write_text(json.dumps(obj, indent=2, default=str) + "\n")


class TrainProgress:
    """A rich progress bar over the steps of an epoch (only on a terminal, on rank 0)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and distributed.is_main() and console.is_terminal
        self.progress: Progress | None = None
        self.task_id: Any = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self.progress.start()
        self.task_id = self.progress.add_task("train", total=steps, epoch=f"{epoch + 1}/{epochs}", stats="")

    def advance(self, stats: str | None = None) -> None:
        if self.progress is not None:
            if stats is None:
                self.progress.advance(self.task_id)
            else:
                self.progress.update(self.task_id, advance=1, stats=stats)

    def end_epoch(self) -> None:
        if self.progress is not None:
            self.progress.remove_task(self.task_id)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class MetricsRecorder:
    """metrics.csv (one row per evaluation) and TensorBoard scalars, in the run directory."""

    def __init__(self, run_dir: Path, tensorboard: bool):
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "metrics.csv"
        self.writer = None
        if tensorboard and distributed.is_main():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def evaluation(self, row: Mapping[str, Any], step: int) -> None:
        """Append one evaluation to metrics.csv (header from the first row) and to TensorBoard under val/."""
        if not distributed.is_main():
            return
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row.keys()), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.scalars("val", {k: v for k, v in row.items() if isinstance(v, float)}, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
