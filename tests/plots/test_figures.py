"""The matplotlib figures of plots/: what they show is read back from the figure objects."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
from PIL import Image

from cvtrain.contracts.plots import ConfusionData, PRCurve
from cvtrain.plots.figures import (
    confusion_figure,
    curves_figure,
    envelope_at,
    pr_figure,
    render,
    save_png,
)


def test_the_confusion_matrix_shows_each_true_class_normalised_with_names_on_both_axes() -> None:
    counts = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    figure = confusion_figure(ConfusionData(counts=counts, names=["cat", "dog", "background"], title="t"))
    axes = figure.axes[0]
    shown = np.ma.filled(axes.images[0].get_array(), np.nan)
    np.testing.assert_allclose(shown[:2], [[0.8, 0.2, 0.0], [0.25, 0.75, 0.0]])
    assert np.isnan(shown[2]).all()  # a class that never occurs is blank, not 0
    assert [t.get_text() for t in axes.get_xticklabels()] == ["cat", "dog", "background"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["cat", "dog", "background"]
    assert {t.get_text() for t in axes.texts} == {"0.80", "0.20", "0.25", "0.75"}
    image = render(figure)
    assert image.dtype == np.uint8 and image.shape[2] == 3 and min(image.shape[:2]) >= 400


def test_curves_show_train_losses_and_lr_by_step_and_metrics_by_epoch() -> None:
    train = [
        {"step": s, "loss": 2.0 / s, "loss_box": 1.0 / s, "lr": 0.1, "images_per_s": 50.0} for s in (1, 2, 3)
    ]
    evaluations = [
        {"epoch": 1, "step": 2, "map": 0.1, "map_50": 0.2, "map_small": -1.0, "voc_map": 0.3},
        {"epoch": 2, "step": 4, "map": 0.3, "map_50": 0.5, "map_small": -1.0, "voc_map": 0.6},
    ]
    figure = curves_figure(train, evaluations)
    panels = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in panels] == ["train losses", "learning rate", "map", "voc"]
    # one panel per family of metrics; map_small is always -1 (no small objects): left out
    assert [line.get_label() for line in panels[2].get_lines()] == ["map", "map_50"]
    np.testing.assert_allclose(panels[3].get_lines()[0].get_xydata(), [[1, 0.3], [2, 0.6]])  # by epoch
    losses = panels[0]
    names = [line.get_label() for line in losses.get_lines()]
    assert names == ["loss", "loss_box"]  # images_per_s is no loss
    np.testing.assert_allclose(losses.get_lines()[0].get_xydata(), [[1, 2.0], [2, 1.0], [3, 2 / 3]])
    assert render(curves_figure([], [])).shape[2] == 3  # before anything is recorded


def test_pr_curves_carry_each_class_ap_and_the_mean() -> None:
    curves = [
        PRCurve("circle", np.array([0.5, 1.0]), np.array([1.0, 0.5]), 0.75),
        PRCurve("square", np.array([0.25, 0.5]), np.array([1.0, 1.0]), 0.5),
        PRCurve("none", np.zeros(0), np.zeros(0), float("nan")),  # no ground truth: left out
    ]
    figure = pr_figure(curves, "title")
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert labels == ["circle 0.750", "square 0.500", "all classes 0.625 mAP@0.5"]


def test_the_precision_envelope_is_read_at_recall_points() -> None:
    curve = PRCurve("c", np.array([0.2, 0.4, 0.6]), np.array([1.0, 0.5, 0.6]), 0.0)
    np.testing.assert_allclose(
        envelope_at(curve, np.array([0.0, 0.2, 0.3, 0.6, 0.7])), [1.0, 1.0, 0.6, 0.6, 0.0]
    )
    undetected = PRCurve("c", np.zeros(0), np.zeros(0), 0.0)  # a class with objects but no detection
    np.testing.assert_allclose(envelope_at(undetected, np.array([0.0, 0.5])), [0.0, 0.0])
    assert pr_figure([undetected], "t").axes[0].get_legend() is not None


def test_save_png_writes_a_readable_picture_for_everyone(tmp_path: Path) -> None:
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    image[:, :20] = (255, 0, 0)
    path = tmp_path / "plots" / "x.png"
    save_png(image, path)
    with Image.open(path) as png:
        assert png.size == (40, 30) and np.array_equal(np.asarray(png), image)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary left


def test_many_classes_leave_the_cells_unannotated() -> None:
    classes = 85
    counts = np.eye(classes, dtype=int)
    figure = confusion_figure(ConfusionData(counts, [f"c{i}" for i in range(classes)], "many"))
    assert not figure.axes[0].texts


def test_a_rendered_figure_is_freed_and_never_registered_with_pyplot() -> None:
    import gc
    import sys
    import weakref

    figure = confusion_figure(ConfusionData(np.eye(3, dtype=int), ["a", "b", "c"], "t"))
    render(figure)
    ref = weakref.ref(figure)
    del figure
    gc.collect()
    assert ref() is None  # nothing keeps it: refreshing the plots at every evaluation does not grow memory
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()


def test_error_and_accuracy_get_panels_of_their_own() -> None:
    evaluations = [
        {
            "epoch": e,
            "top1_err": 0.5 / e,
            "top5_err": 0.2 / e,
            "top1_acc": 1 - 0.5 / e,
            "top5_acc": 1 - 0.2 / e,
        }
        for e in (1, 2)
    ]
    panels = {a.get_title(): a for a in curves_figure([], evaluations).axes}
    assert set(panels) == {"top err", "top acc"}
    assert [line.get_label() for line in panels["top err"].get_lines()] == ["top1_err", "top5_err"]


def test_a_tiny_change_is_drawn_flat_on_an_axis_from_zero_with_plain_labels() -> None:
    train = [{"step": s, "loss": 0.00337 + 0.00001 * s, "lr": 0.01} for s in (1, 2, 3)]
    panels = {a.get_title(): a for a in curves_figure(train, []).axes}
    losses = panels["train losses"]
    bottom, top = losses.get_ylim()
    assert bottom == 0 and 0.0034 < top < 0.004  # not zoomed to 0.00338..0.00340
    render(losses.figure)  # lays out the tick labels
    labels = [t.get_text() for t in losses.get_yticklabels() if t.get_text()]
    assert labels and all(len(text) <= 7 for text in labels)  # "0.003", "0.0035": they fit the margin
    assert losses.yaxis.get_offset_text().get_text() == ""


def test_twenty_one_classes_keep_readable_names_and_numbers() -> None:
    names = ["background", *(f"class {i}" for i in range(20))]
    counts = np.eye(21, dtype=int) * 9 + 1
    figure = confusion_figure(ConfusionData(counts, names, "voc"))
    axes = figure.axes[0]
    assert min(t.get_fontsize() for t in axes.get_xticklabels()) >= 8
    assert axes.texts and min(t.get_fontsize() for t in axes.texts) >= 7
    # COCO's 80 classes: names still 8 pt on a bigger figure
    coco = confusion_figure(ConfusionData(np.eye(80, dtype=int), [f"c{i}" for i in range(80)], "coco"))
    assert min(t.get_fontsize() for t in coco.axes[0].get_yticklabels()) >= 8
    assert render(coco).shape[0] >= 1800
