"""CSV logs of rows with different keys: one header per file, each value under its own column."""

from __future__ import annotations

import csv
from pathlib import Path

from cvtrain.engine.csv_log import CsvLog


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_rows_of_other_keys_fill_their_own_columns_and_leave_the_others_empty(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    log.append({"step": 3, "loss": 1.5, "lr": 0.1})
    log.append({"step": 4, "data_wait_share": 0.25})  # a key the header lacks: the file is widened
    log.append({"step": 6, "lr": 0.05, "loss": 1.25})  # another order of the same keys
    assert _read(path) == [
        ["step", "loss", "lr", "data_wait_share"],
        ["3", "1.5", "0.1", ""],
        ["4", "", "", "0.25"],
        ["6", "1.25", "0.05", ""],
    ]


def test_a_resumed_run_appends_under_the_header_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    CsvLog(path).append({"epoch": 1, "step": 10, "top1_err": 0.5, "data_wait_share": 0.1})
    CsvLog(path).append({"data_wait_share": 0.2, "top1_err": 0.25, "step": 20, "epoch": 2})  # a new process
    assert _read(path) == [
        ["epoch", "step", "top1_err", "data_wait_share"],
        ["1", "10", "0.5", "0.1"],
        ["2", "20", "0.25", "0.2"],
    ]


def test_widening_keeps_every_earlier_cell_and_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    path.write_text("step,loss,lr\n1,2.0,0.1\n2,1.5,\n")
    path.chmod(0o640)
    CsvLog(path).append({"step": 3, "images_per_s": 99.0})
    assert _read(path) == [
        ["step", "loss", "lr", "images_per_s"],
        ["1", "2.0", "0.1", ""],
        ["2", "1.5", "", ""],
        ["3", "", "", "99.0"],
    ]
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["train_log.csv"]  # no temporary left


def test_an_empty_file_gets_a_header(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.touch()  # a run killed before its first row
    CsvLog(path).append({"epoch": 1, "step": 5})
    assert _read(path) == [["epoch", "step"], ["1", "5"]]
