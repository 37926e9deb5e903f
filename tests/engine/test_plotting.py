"""plots/ of a run: written after each evaluation from what the run recorded, the evaluator's plot data and the
task's previews, also into TensorBoard; and the evaluation's progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.plots import ConfusionData, Panel, PlotData, PRCurve, Preview
from cvtrain.engine.loop import evaluate, fit
from cvtrain.engine.plotting import PreviewCollector, RunPlots, read_rows
from cvtrain.engine.recorders.csv_files import CsvRecorder
from cvtrain.engine.recorders.fanout import Recorders
from cvtrain.engine.recorders.tensorboard import TensorBoardRecorder
from cvtrain.engine.state import FitProgress
from cvtrain.plots import figures
from tests.engine.test_loop import MSE, make_run


class Drawing:
    """Draws each evaluated sample as a grey square headed by its value (the task outputs' `preview`)."""

    def preview(self, batch: Batch, predictions: torch.Tensor, limit: int) -> list[Preview]:
        grey = np.full((20, 20, 3), 128, dtype=np.uint8)
        return [Preview((Panel(grey, f"{float(x[0]):.3f}"),)) for x in batch.images[:limit]]


class PlottingMSE(MSE):
    def plot_data(self) -> PlotData:
        curve = PRCurve("thing", np.array([0.5, 1.0]), np.array([1.0, 0.5]), 0.75)
        return PlotData(ConfusionData(np.array([[3, 1], [0, 2]]), ["a", "b"], "t"), [curve], "pr")


def test_fit_writes_every_plot_after_each_evaluation_and_to_tensorboard(tmp_path: Path) -> None:
    run = make_run(tmp_path, epochs=2)
    run.evaluator = PlottingMSE()
    run.recorder = Recorders([TensorBoardRecorder(run_dir=tmp_path), CsvRecorder(run_dir=tmp_path)])
    run.plots = RunPlots(tmp_path, run.recorder, Drawing())
    fit(run, FitProgress())
    run.recorder.close()
    names = ("curves", "confusion_matrix", "pr_curve", "predictions")
    for name in names:
        with Image.open(tmp_path / "plots" / f"{name}.png") as png:
            assert png.mode == "RGB" and min(png.size) >= 60, name
    train = read_rows(tmp_path / "train_log.csv")
    losses = [r for r in train if "loss" in r]
    assert [r["step"] for r in losses] == [4, 8, 12, 16] and {"loss", "lr", "images_per_s"} <= losses[
        0
    ].keys()
    assert [r["step"] for r in train if "data_wait_share" in r] == [8, 16]  # each epoch's end, its own rows
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {f"plots/{n}" for n in names} <= set(events.Tags()["images"])
    assert [e.step for e in events.Images("plots/curves")] == [8, 16]  # refreshed at each evaluation


def test_without_plots_nothing_is_drawn(tmp_path: Path) -> None:
    run = make_run(tmp_path, epochs=1)
    fit(run, FitProgress())
    assert not (tmp_path / "plots").exists() and (tmp_path / "train_log.csv").is_file()


def test_previews_come_from_batches_spread_over_the_evaluation(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    collector = PreviewCollector(Drawing(), batches=len(run.val_loader), limit=3)  # 4 batches of 4
    evaluate(
        model=run.model, loader=run.val_loader, task=run.task, evaluator=MSE(), device=run.device,
        amp_dtype=None, bad_samples=run.bad_samples, previews=collector,
    )  # fmt: skip
    x = torch.cat([b.images for b in run.val_loader])
    firsts = [f"{float(x[i, 0]):.3f}" for i in (0, 8, 12)]  # the first image of batches 0, 2 and 3
    assert [p.panels[0].heading for p in collector.previews] == firsts


def test_a_failure_to_draw_is_a_warning_not_the_end_of_the_run(tmp_path: Path, caplog: Any) -> None:
    class Broken(MSE):
        def plot_data(self) -> PlotData:
            raise RuntimeError("no ink")

    plots = RunPlots(tmp_path, Recorders([]), Drawing())
    assert plots.write(Broken(), None, step=1) == []
    assert "plots in" in caplog.text and "no ink" in caplog.text


def test_read_rows_keeps_the_last_row_of_a_repeated_step(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    path.write_text("step,loss,lr\n1,2.0,0.1\n2,1.5,\n1,1.9,0.1\n")  # a resumed run repeated step 1
    assert read_rows(path) == [{"step": 1.0, "loss": 1.9, "lr": 0.1}, {"step": 2.0, "loss": 1.5}]
    assert read_rows(tmp_path / "absent.csv") == []


def test_curves_plot_the_losses_of_loss_rows_only(tmp_path: Path) -> None:
    recorder = CsvRecorder(run_dir=tmp_path)
    for step in (3, 6, 9):
        recorder.scalars("train", {"loss": 2.0 / step, "lr": 0.1, "images_per_s": 50.0}, step)
    recorder.scalars("train", {"data_wait_share": 0.018}, 9)  # the epoch's end, at a logged step
    recorder.scalars("train", {"data_wait_share": 0.02}, 10)
    rows = read_rows(tmp_path / "train_log.csv")
    at_9 = [r for r in rows if r["step"] == 9]  # two rows of the same step, neither lost
    assert at_9 == [
        {"step": 9.0, "loss": 2 / 9, "lr": 0.1, "images_per_s": 50.0},
        {"step": 9.0, "data_wait_share": 0.018},
    ]
    losses = figures.curves_figure(rows, []).axes[0]
    assert losses.get_title() == "train losses"
    (line,) = losses.get_lines()
    assert line.get_label() == "loss"
    np.testing.assert_allclose(line.get_xydata(), [[3, 2 / 3], [6, 1 / 3], [9, 2 / 9]])


def test_evaluate_shows_a_bar_over_its_batches(tmp_path: Path) -> None:
    class Bar:
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def start_eval(self, batches: int) -> None:
            self.calls.append(("start", batches))

        def advance(self) -> None:
            self.calls.append("advance")

        def end_eval(self) -> None:
            self.calls.append("end")

    run = make_run(tmp_path)
    bar = Bar()
    evaluate(
        model=run.model, loader=run.val_loader, task=run.task, evaluator=MSE(), device=run.device,
        amp_dtype=None, bad_samples=run.bad_samples, progress=bar,  # type: ignore[arg-type]
    )  # fmt: skip
    assert bar.calls == [("start", 4), "advance", "advance", "advance", "advance", "end"]
