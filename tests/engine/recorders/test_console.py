"""logger=console: the progress bars (on a terminal), the last logged loss beside the training bar; eval and
predict take the same switch."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from cvtrain.config.logger import ConsoleConfig, RecorderConfig
from cvtrain.engine import reporting
from cvtrain.engine.recorders.console import ConsoleRecorder, progress_bar

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_training_bar_shows_the_last_logged_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _Terminal()
    monkeypatch.setattr(reporting, "console", Console(file=screen, force_terminal=True, width=120))
    recorder = ConsoleRecorder(progress=True)
    bar = recorder.progress
    bar.start_epoch(0, 2, steps=4)
    recorder.scalars("train", {"loss": 0.1234, "lr": 0.05, "images_per_s": 321.0}, 1)
    recorder.scalars("train", {"data_wait_share": 0.5}, 4)  # an epoch's end: the bar keeps the losses
    bar.advance()
    assert bar.progress is not None
    bar.progress.refresh()
    recorder.close()
    assert bar.progress is None  # closing stops the bar
    assert re.search(r"epoch 1/2 .* 1/4 loss=0.1234 lr=0.05 321 img/s", ANSI.sub("", screen.getvalue()))


def test_progress_false_and_no_console_recorder_show_no_bar() -> None:
    assert ConsoleRecorder(progress=False).progress.enabled is False
    assert (
        progress_bar({"csv": RecorderConfig(_target_="cvtrain.engine.recorders.csv_files.CsvRecorder")})
        is reporting.NO_PROGRESS
    )
    assert progress_bar({"console": ConsoleConfig(progress=False)}).enabled is False
