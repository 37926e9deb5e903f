"""Console output: rich's on a terminal; full, unwrapped lines when stdout is a log file, a pipe or CI."""

import csv
import fcntl
import io
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.console import Console

from cvtrain.engine.reporting import ConsoleHandler, make_console, metrics_table
from tests.conftest import run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _long_path(root: Path) -> Path:
    path = root.joinpath(*(f"a_rather_long_folder_name_{i:02d}" for i in range(9)), "broken_0001.ckpt")
    assert len(str(path)) > 250
    return path


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _log_through(console: Console, message: str) -> None:
    logger = logging.getLogger("cvtrain.test_reporting")
    handler = ConsoleHandler(console=console, show_path=False)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("%s", message)
    finally:
        logger.removeHandler(handler)


def test_off_a_terminal_a_long_message_is_one_line_and_continuations_are_indented(tmp_path: Path) -> None:
    out = io.StringIO()
    path = _long_path(tmp_path)
    _log_through(make_console(out), f"checkpoint {path} does not exist\nsecond line")
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(rf"\[[^]]+\] ERROR    checkpoint {re.escape(str(path))} does not exist", first)
    assert second == " " * first.index("checkpoint") + "second line"
    assert "\x1b[" not in out.getvalue()


def test_on_a_terminal_the_log_stays_rich_columns_wrapped_to_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = _Terminal()
    console = make_console(out)
    assert not console.soft_wrap and console.width == 80
    path = _long_path(tmp_path)
    _log_through(console, f"checkpoint {path} does not exist")
    lines = ANSI.sub("", out.getvalue()).splitlines()
    assert len(lines) > 3 and all(len(line) <= 80 for line in lines)
    assert "ERROR" in lines[0]


def test_off_a_terminal_tables_print_whole_at_their_own_width() -> None:
    out = io.StringIO()
    name = "per_class_iou/" + "a_very_long_class_name_" * 12
    make_console(out).print(metrics_table({name: 0.5, "miou": 0.25}, title="final evaluation"))
    lines = out.getvalue().splitlines()
    assert any(name in line and "0.5000" in line for line in lines)
    assert all(line == line.rstrip() for line in lines)  # not padded out to the wide console
    assert max(len(line) for line in lines) < len(name) + 20


def test_a_long_path_in_an_error_is_one_unbroken_line_in_a_log_file(tmp_path: Path) -> None:
    path = _long_path(tmp_path)
    proc = run_cli("eval", f"ckpt={path}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    (line,) = [line for line in out.splitlines() if "does not exist" in line]
    assert f"checkpoint {path} does not exist" in line and "ERROR" in line


def test_on_a_real_terminal_the_cli_keeps_rich_wrapping(tmp_path: Path) -> None:
    path = _long_path(tmp_path)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # 100 columns
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvtrain.cli", "eval", f"ckpt={path}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(timeout=120) != 0
    lines = ANSI.sub("", b"".join(chunks).decode()).splitlines()
    assert any("ERROR" in line for line in lines) and "does not exist" in "".join(lines)
    assert all(len(line.rstrip("\r")) <= 100 for line in lines)
    assert not any(str(path) in line for line in lines)  # wrapped to the window, as rich does on a terminal


def test_the_evaluation_has_its_own_bar_on_a_terminal_and_none_off_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cvtrain.engine import reporting

    screen = _Terminal()
    monkeypatch.setattr(reporting, "console", Console(file=screen, force_terminal=True, width=100))
    bar = reporting.TrainProgress(enabled=True)
    bar.start_eval(4)
    bar.advance()
    bar.advance()
    assert bar.progress is not None
    bar.progress.refresh()
    bar.end_eval()
    bar.stop()
    assert re.search(r"eval .* 2/4", ANSI.sub("", screen.getvalue()))
    monkeypatch.setattr(reporting, "console", make_console(io.StringIO()))  # a log file: no bar at all
    off = reporting.TrainProgress(enabled=True)
    off.start_eval(4)
    assert off.progress is None
    assert reporting.TrainProgress(enabled=False).enabled is False


# --- train_log.csv and metrics.csv: one header per file, every value in its own column ---------------------------

LOGGED_RUN = (
    "data.train_per_class=8",  # 40 images: 10 steps of 4 per epoch
    "data.val_per_class=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "trainer.device=cpu",
    "trainer.log_every=3",  # loss rows at steps 3, 6, 9, ...; data-wait rows at the epochs' ends, 10 and 20
    "logger=[csv]",
)


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_train_log_and_metrics_csv_keep_each_value_in_its_column_across_a_resume(tmp_path: Path) -> None:
    args = (*LOGGED_RUN, f"data.cache_dir={tmp_path / 'shapes'}", f"hydra.run.dir={tmp_path / 'run'}")
    run_cli("fit", *args, "trainer.epochs=1", cwd=tmp_path)
    first = (tmp_path / "run" / "train_log.csv").read_text()
    run_cli("fit", *args, "trainer.epochs=2", "trainer.resume=auto", cwd=tmp_path)

    text = (tmp_path / "run" / "train_log.csv").read_text()
    assert text.startswith(first)  # the resumed run appended under the same header, nothing rewritten
    assert text.count("step,") == 1
    columns, rows = _csv(tmp_path / "run" / "train_log.csv")
    assert columns == ["step", "lr", "loss", "images_per_s", "data_wait_share"]  # step 1 records the lr alone
    assert all(None not in row and None not in row.values() for row in rows)  # no cell beyond the header
    losses = [r for r in rows if r["loss"]]
    waits = [r for r in rows if r["data_wait_share"]]
    lrs = [r for r in rows if r["lr"] and not r["loss"]]  # a 10-step epoch: the lr of every other step too
    assert [int(r["step"]) for r in lrs] == [s for s in range(1, 21) if s % 3]
    assert len(losses) + len(waits) + len(lrs) == len(rows)
    assert [int(r["step"]) for r in losses] == [3, 6, 9, 12, 15, 18]
    for row in losses:
        assert float(row["loss"]) > 0 and 0 <= float(row["lr"]) <= 0.1 and float(row["images_per_s"]) > 0
        assert row["data_wait_share"] == ""
    assert [int(r["step"]) for r in waits] == [10, 20]
    for row in waits:
        assert 0 <= float(row["data_wait_share"]) <= 1
        assert row["loss"] == row["lr"] == row["images_per_s"] == ""

    columns, evaluations = _csv(tmp_path / "run" / "metrics.csv")
    assert columns == [
        "epoch",
        "step",
        "top1_acc",
        "top5_acc",
        "top1_err",
        "top5_err",
        "loss",
        "data_wait_share",
    ]
    assert [(int(r["epoch"]), int(r["step"])) for r in evaluations] == [(1, 10), (2, 20)]
    assert [r["data_wait_share"] for r in evaluations] == [r["data_wait_share"] for r in waits]
    for row in evaluations:
        assert 0 <= float(row["top1_err"]) <= 1 and float(row["top1_acc"]) + float(
            row["top1_err"]
        ) == pytest.approx(1)
