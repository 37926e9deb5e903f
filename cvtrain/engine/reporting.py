"""What a run shows: the rich console, its log handler, progress bars, metrics tables, and results.json.

Only rank 0 reports; on other ranks every object here is inert. On a terminal the console is rich's; when stdout is
not one (a SLURM log file, `| tee`, CI) nothing is hard-wrapped: every message is one full line, so a path in it
can be grepped and copied, and tables print at their natural width.

The console reads no markup: what it prints is printed as it is, so a file named `photo[red] x.jpg`, a class
name or a box `[nan, 5.0, ...]` in a table, a title or a message never loses its brackets. Style goes in as
rich styles (`style=`, `Text(..., style=)`, a table's `header_style`), never as `[bold]` in a string.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console, ConsoleRenderable
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

log = logging.getLogger("cvtrain")

# Off a terminal nothing wraps, so the width only bounds what rich lays out to fit it: tables (which never stretch
# to it) fit in full.
NOT_A_TERMINAL_WIDTH = 10_000


def make_console(file: IO[str] | None = None) -> Console:
    """rich's console (on `file`, default stdout). When that is not a terminal (FORCE_COLOR may still colour it),
    one that never wraps (`soft_wrap`) and is wide enough for any table; `ConsoleHandler` then writes one line
    per message. It never reads markup (see the module docstring)."""
    console = Console(file=file, markup=False)
    if not _isatty(console.file):
        console.soft_wrap = True
        console.width = max(console.width, NOT_A_TERMINAL_WIDTH)
    return console


def _isatty(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


console = make_console()
_shared_console = console  # ConsoleHandler's default (its `console` argument shadows the name)


class ConsoleHandler(RichHandler):
    """The console log handler of cvtrain's and Hydra's logging (conf/hydra/{job,hydra}_logging/rich.yaml).

    On a terminal it is rich's handler (time, level and message in columns, wrapped to the window). On a console
    that does not wrap (`make_console` off a terminal) each record is `[time] LEVEL    message` on one line,
    continuation lines of a multi-line message indented under it. It writes through `console`, the same console
    as the tables and the progress bar.
    """

    def __init__(
        self, level: int | str = logging.NOTSET, console: Console | None = None, **kwargs: Any
    ) -> None:
        self.time_format: Any = kwargs.get("log_time_format", "[%x %X]")
        super().__init__(level, console or _shared_console, **kwargs)

    def render(
        self, *, record: logging.LogRecord, traceback: Any, message_renderable: ConsoleRenderable
    ) -> ConsoleRenderable:
        if not self.console.soft_wrap or traceback is not None or not isinstance(message_renderable, Text):
            return super().render(record=record, traceback=traceback, message_renderable=message_renderable)
        created = datetime.fromtimestamp(record.created)
        fmt = self.time_format
        stamp = fmt(created) if callable(fmt) else Text(created.strftime(fmt))
        prefix = Text.assemble(stamp, " ", self.get_level_text(record), " ")
        line = Text()
        for i, part in enumerate(message_renderable.split("\n", allow_blank=True)):
            line.append_text(prefix if i == 0 else Text("\n" + " " * len(prefix)))
            line.append_text(part)
        return line


def _is_main() -> bool:
    # Imported on use: `cvtrain --help`, `--version` and the override check print through this module's console
    # and answer without loading torch (torch.distributed is torch).
    from cvtrain.engine import distributed

    return distributed.is_main()


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
    if _is_main() and renderable is not None:
        console.print(renderable)


def write_json(path: Path, obj: Any) -> None:
    if _is_main():
        Path(path).write_text(json.dumps(obj, indent=2, default=str) + "\n")


class TrainProgress:
    """A rich progress bar over the steps of an epoch, or the batches of an evaluation (only on a terminal, on
    rank 0): one bar at a time in one live display."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and _is_main() and console.is_terminal
        self.progress: Progress | None = None
        self.task_id: Any = None

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self._start(f"epoch {epoch + 1}/{epochs}", steps, done)

    def start_eval(self, batches: int) -> None:
        """A bar over the evaluation's batches (this process's share), ended by `end_eval`."""
        self._start("eval", batches, 0)

    def _start(self, label: str, total: int, done: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("{task.fields[label]}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}", markup=False),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self.progress.start()
        self.task_id = self.progress.add_task(label, total=total, completed=done, label=label, stats="")

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task_id)

    def show_stats(self, stats: str) -> None:
        """Text beside the bar (the last logged loss, lr and throughput), until the next."""
        if self.progress is not None:
            self.progress.update(self.task_id, stats=stats)

    def end_epoch(self) -> None:
        if self.progress is not None:
            self.progress.remove_task(self.task_id)

    end_eval = end_epoch

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


NO_PROGRESS = TrainProgress(enabled=False)  # shows nothing and holds no state: one serves every caller
