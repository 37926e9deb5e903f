"""Confusion-matrix segmentation metrics against a hand-computed case and a plain numpy reference."""

import math

import numpy as np
import pytest
import torch
from rich.console import Console

from cvtrain.contracts.batch import Batch
from cvtrain.metrics.segmentation import SegmentationEvaluator

NAMES = ["background", "a", "b", "c"]


def batch_of(targets) -> Batch:
    count = len(targets)
    return Batch(images=torch.zeros(count, 3, 1, 1), targets=targets, meta=[{} for _ in range(count)])


def hand_case() -> SegmentationEvaluator:
    evaluator = SegmentationEvaluator(num_classes=4, class_names=NAMES)
    # Image 1: one void pixel (255) whose prediction, class 3, must count nowhere. Image 2 has another size.
    targets = [torch.tensor([[0, 0, 1, 1], [0, 255, 1, 2]]), torch.tensor([[2, 2, 0]])]
    predictions = [torch.tensor([[0, 1, 1, 1], [2, 3, 1, 2]]), torch.tensor([[2, 0, 0]])]
    evaluator.update(batch_of(targets), predictions)
    return evaluator


def test_hand_computed_confusion_matrix_and_metrics():
    evaluator = hand_case()
    # rows = ground truth, columns = prediction; class 3 occurs nowhere once the void pixel is ignored.
    expected = [[2, 1, 1, 0], [0, 3, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert evaluator.confusion.tolist() == expected
    # IoU: bg 2/(4+3-2)=0.4, a 3/(3+4-3)=0.75, b 2/(3+3-2)=0.5, c absent (union 0) → left out of the mean.
    metrics = evaluator.compute()
    assert metrics["miou"] == pytest.approx((0.4 + 0.75 + 0.5) / 3)
    assert metrics["pixel_acc"] == pytest.approx(7 / 10)
    assert metrics["mean_class_acc"] == pytest.approx((2 / 4 + 3 / 3 + 2 / 3) / 3)
    assert metrics["fw_iou"] == pytest.approx((4 * 0.4 + 3 * 0.75 + 3 * 0.5) / 10)
    per_class = evaluator.per_class_iou()
    assert per_class["background"] == pytest.approx(0.4) and per_class["a"] == pytest.approx(0.75)
    assert math.isnan(per_class["c"])


def test_class_only_predicted_counts_in_miou_not_in_class_accuracy():
    evaluator = SegmentationEvaluator(num_classes=3, class_names=NAMES[:3])
    evaluator.update(batch_of(torch.tensor([[[0, 0, 0, 0]]])), torch.tensor([[[0, 0, 1, 1]]]))
    metrics = evaluator.compute()
    assert metrics["miou"] == pytest.approx((0.5 + 0.0) / 2)  # class 1: union 2, IoU 0; class 2 absent
    assert metrics["mean_class_acc"] == pytest.approx(0.5)  # only background is in the ground truth


def numpy_reference(targets: np.ndarray, preds: np.ndarray, n: int) -> dict[str, float]:
    hist = np.zeros((n, n))
    for t, p in zip(targets.ravel(), preds.ravel(), strict=True):
        if t != 255:
            hist[t, p] += 1
    ious, accs, weighted = [], [], 0.0
    for c in range(n):
        tp, gt, pred = hist[c, c], hist[c].sum(), hist[:, c].sum()
        if gt + pred - tp > 0:
            ious.append(tp / (gt + pred - tp))
            weighted += gt * ious[-1]
        if gt > 0:
            accs.append(tp / gt)
    total = hist.sum()
    return {"miou": np.mean(ious), "pixel_acc": np.trace(hist) / total, "mean_class_acc": np.mean(accs),
            "fw_iou": weighted / total}  # fmt: skip


def test_matches_numpy_reference_over_batches_and_merge():
    rng = np.random.default_rng(0)
    n = 6
    targets = rng.integers(0, n - 1, size=(6, 9, 11))  # class n-1 never in the ground truth
    targets[rng.random(targets.shape) < 0.15] = 255
    preds = np.where(
        rng.random(targets.shape) < 0.6, np.minimum(targets, n - 1), rng.integers(0, n, targets.shape)
    )
    preds[targets == 255] = rng.integers(0, n, size=int((targets == 255).sum()))
    names = [f"class{i}" for i in range(n)]
    whole = SegmentationEvaluator(num_classes=n, class_names=names)
    first, second = (SegmentationEvaluator(num_classes=n, class_names=names) for _ in range(2))
    # Two "ranks" with images 0-2 and 3-5, in batches of label maps [B, H, W] of 2 and 1.
    for evaluator, slices in ((first, (slice(0, 2), slice(2, 3))), (second, (slice(3, 5), slice(5, 6)))):
        for part in slices:
            evaluator.update(batch_of(torch.from_numpy(targets[part])), torch.from_numpy(preds[part]))
    whole.update(batch_of(torch.from_numpy(targets[:2])), torch.from_numpy(preds[:2]))
    whole.update(batch_of(list(torch.from_numpy(targets[2:]))), list(torch.from_numpy(preds[2:])))
    first.merge(second)
    reference = numpy_reference(targets, preds, n)
    for evaluator in (whole, first):
        metrics = evaluator.compute()
        assert metrics.keys() == reference.keys()
        for key, value in reference.items():
            assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert torch.equal(first.confusion, whole.confusion)


def test_reset_empty_and_errors():
    evaluator = hand_case()
    evaluator.reset()
    assert evaluator.confusion.sum() == 0
    assert all(math.isnan(v) for v in evaluator.compute().values())
    with pytest.raises(ValueError, match="shape"):
        evaluator.update(
            batch_of(torch.zeros(1, 2, 2, dtype=torch.long)), torch.zeros(1, 2, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"0\.\.3"):
        evaluator.update(batch_of(torch.full((1, 2, 2), 7)), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="class names"):
        SegmentationEvaluator(num_classes=3, class_names=NAMES)


def test_report_table_names_classes_and_marks_absent():
    console = Console(record=True, width=100)
    console.print(hand_case().report())
    text = console.export_text()
    assert "background" in text and "40.00" in text and "75.00" in text and "mIoU 55.00" in text
    (row_c,) = [line for line in text.splitlines() if " c " in line]
    assert "—" in row_c


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_accumulates_on_the_predictions_device():
    evaluator = SegmentationEvaluator(num_classes=4, class_names=NAMES)
    targets = torch.tensor([[[0, 1], [255, 3]]], device="cuda")
    evaluator.update(batch_of(targets), torch.tensor([[[0, 1], [2, 2]]], device="cuda"))
    assert evaluator.confusion.device.type == "cuda" and evaluator.confusion.sum() == 3
