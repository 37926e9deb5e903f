"""VOC AP: hand-computed cases, a literal transcription of the devkit's VOCevaldet.m, and the real fixture."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from torchvision.ops import box_iou

from cvtrain.commands.score import score_results
from cvtrain.contracts.batch import Batch
from cvtrain.data.voc.detection import VOCDetection, VOCRecord
from cvtrain.errors import DataError
from cvtrain.metrics.voc import (
    VOCEvaluator,
    devkit_overlaps,
    to_devkit_boxes,
    voc07_ap,
    voc_ap,
)
from tests.conftest import fixture_dir


def record(image_id: str, boxes, labels, difficult=None) -> VOCRecord:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    difficult = np.zeros(len(boxes), bool) if difficult is None else np.asarray(difficult, bool)
    return VOCRecord(
        image_id, Path(f"{image_id}.jpg"), 100, 100, boxes, np.asarray(labels, np.int64), difficult
    )


def prediction(boxes, scores, labels) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }


def feed(evaluator: VOCEvaluator, per_image: dict[str, dict[str, torch.Tensor]]) -> None:
    batch = Batch(images=[], targets=[], meta=[{"image_id": i} for i in per_image])
    evaluator.update(batch, list(per_image.values()))


@pytest.fixture
def hand_case() -> tuple[list[VOCRecord], dict[str, dict[str, torch.Tensor]]]:
    """Class 0: image a has one object and one difficult object, image b one object (npos = 2).

    In score order: d1 finds a's object (TP); d2 hits the difficult one (ignored); d3 is a duplicate of d1 (FP);
    d4 hits nothing (FP); d5 finds b's object (TP). Ignoring d2: tp = 1 1 1 1 2, fp = 0 0 1 2 2, so recall
    = .5 .5 .5 .5 1 and precision = 1 1 .5 1/3 .5.
    VOC2010+: envelope 1 up to recall .5, then .5 up to 1 -> AP = .5 * 1 + .5 * .5 = .75.
    VOC2007: t = 0 ... .5 -> 1 (6 points), t = .6 ... 1 -> .5 (5 points) -> AP = 8.5 / 11.
    """
    records = [
        record("a", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0], [False, True]),
        record("b", [[50, 50, 70, 70]], [0]),
    ]
    predictions = {
        "a": prediction([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9]], [0.9, 0.8, 0.7], [0, 0, 0]),
        "b": prediction([[0, 0, 5, 5], [50, 50, 70, 71]], [0.6, 0.5], [0, 0]),
    }
    return records, predictions


def test_hand_computed_difficult_and_duplicate(hand_case) -> None:
    records, predictions = hand_case
    evaluator = VOCEvaluator(records=records, class_names=["cat"])
    feed(evaluator, predictions)
    assert evaluator.compute() == {
        "voc_map": pytest.approx(0.75, abs=1e-15),
        "voc07_map": pytest.approx(8.5 / 11),
    }
    assert evaluator.per_class_ap() == {"cat": pytest.approx(0.75)}


def test_the_difficult_flag_is_what_makes_d2_ignored(hand_case) -> None:
    records, predictions = hand_case
    records[0] = record("a", records[0].boxes, [0, 0])  # same boxes, none difficult: npos = 3, d2 is a TP
    evaluator = VOCEvaluator(records=records, class_names=["cat"])
    feed(evaluator, predictions)
    # tp = 1 2 2 2 3, fp = 0 0 1 2 2: recall 1/3 2/3 2/3 2/3 1, precision 1 1 2/3 1/2 3/5
    assert evaluator.compute()["voc_map"] == pytest.approx(2 / 3 + 1 / 3 * 3 / 5)


def test_class_without_detections_counts_as_zero_and_class_without_gt_is_left_out(hand_case) -> None:
    records, predictions = hand_case
    records[1] = record("b", [[50, 50, 70, 70], [0, 60, 10, 80]], [0, 1])  # a dog nobody detects
    predictions["b"] = prediction([[0, 0, 5, 5], [50, 50, 70, 71], [1, 1, 9, 9]], [0.6, 0.5, 0.99], [0, 0, 2])
    evaluator = VOCEvaluator(
        records=records, class_names=["cat", "dog", "bird"]
    )  # birds detected, none exist
    feed(evaluator, predictions)
    per_class = evaluator.per_class_ap()
    assert (
        per_class["cat"] == pytest.approx(0.75) and per_class["dog"] == 0.0 and math.isnan(per_class["bird"])
    )
    assert evaluator.compute() == {
        "voc_map": pytest.approx((0.75 + 0.0) / 2),
        "voc07_map": pytest.approx((8.5 / 11 + 0.0) / 2),
    }
    console = Console(record=True, width=100)
    console.print(evaluator.report())
    text = console.export_text()
    assert "cat" in text and "dog" in text and "bird" in text and "0.7500" in text and "0.3750" in text


def test_overlap_of_exactly_half_is_a_match() -> None:
    # devkit: [1, 1, 10, 10] vs [1, 1, 10, 5] -> 50 / 100 = 0.5, and the devkit tests ovmax >= minoverlap
    evaluator = VOCEvaluator(records=[record("a", [[0, 0, 10, 10]], [0])], class_names=["cat"])
    feed(evaluator, {"a": prediction([[0, 0, 10, 5]], [0.5], [0])})
    assert evaluator.compute()["voc_map"] == 1.0


def test_a_detection_whose_best_object_is_taken_is_a_false_positive() -> None:
    # d2 overlaps both objects but most the already-found one: the devkit does not fall back to the free one.
    evaluator = VOCEvaluator(
        records=[record("a", [[0, 0, 10, 10], [0, 2, 10, 12]], [0, 0])], class_names=["c"]
    )
    feed(evaluator, {"a": prediction([[0, 0, 10, 10], [0, 0.5, 10, 10.5]], [0.9, 0.8], [0, 0])})
    # recall .5 .5, precision 1 .5
    assert evaluator.compute() == {"voc_map": 0.5, "voc07_map": pytest.approx(6 / 11)}


def test_eleven_point_thresholds_are_exact_tenths() -> None:
    # ten objects, three found: recall reaches exactly 0.3, which counts for t = 0.3 (4 of 11 points).
    boxes = [[10 * i, 0, 10 * i + 5, 5] for i in range(10)]
    evaluator = VOCEvaluator(records=[record("a", boxes, [0] * 10)], class_names=["c"])
    feed(evaluator, {"a": prediction(boxes[:3], [0.9, 0.8, 0.7], [0, 0, 0])})
    assert evaluator.compute() == {"voc_map": pytest.approx(0.3), "voc07_map": pytest.approx(4 / 11)}


def test_ap_functions_on_a_known_curve() -> None:
    recall = np.array([0.25, 0.25, 0.5, 0.75, 0.75])
    precision = np.array([1.0, 0.5, 2 / 3, 0.75, 0.6])
    assert voc_ap(recall, precision) == pytest.approx(0.25 * 1 + 0.25 * 0.75 + 0.25 * 0.75)
    assert voc07_ap(recall, precision) == pytest.approx((3 * 1 + 5 * 0.75) / 11)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0 and voc07_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_devkit_overlap_on_one_based_boxes_is_the_continuous_iou() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, size=(2, 20, 2, 2))
    a, b = (np.concatenate([c.min(1), c.max(1)], axis=1) for c in corners)
    devkit = devkit_overlaps(to_devkit_boxes(a), to_devkit_boxes(b))
    continuous = box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(np.where(np.isinf(devkit), 0.0, devkit), continuous, rtol=1e-12, atol=1e-12)


def test_merge_and_repeated_images(hand_case) -> None:
    records, predictions = hand_case
    whole = VOCEvaluator(records=records, class_names=["cat"])
    feed(whole, predictions)
    first, second = (VOCEvaluator(records=records, class_names=["cat"]) for _ in range(2))
    feed(first, {"a": predictions["a"]})
    feed(second, {"b": predictions["b"]})
    feed(second, {"a": predictions["a"]})  # a padded sampler sends an image twice: it must not count twice
    first.merge(second)
    assert first.compute() == whole.compute()
    first.reset()
    assert first.compute() == {"voc_map": 0.0, "voc07_map": 0.0}


def test_only_seen_images_count_and_unknown_ids_fail(hand_case) -> None:
    records, predictions = hand_case
    evaluator = VOCEvaluator(records=records, class_names=["cat"])
    feed(evaluator, {"b": predictions["b"]})
    # image b alone: a miss then its one object (recall 0 1, precision 0 .5) -> AP .5
    assert evaluator.compute()["voc_map"] == 0.5
    with pytest.raises(DataError, match="'zzz'"):
        feed(evaluator, {"zzz": predictions["b"]})


def devkit_reference(
    records: list[VOCRecord], detections: list[tuple[str, float, list[float], int]], cls: int
):
    """VOCevaldet.m + VOCap.m, transcribed line by line (1-based boxes; the 11-point loop from VOCevaldet 2007)."""
    gt, npos = {}, 0
    for r in records:
        keep = r.labels == cls
        gt[r.image_id] = {
            "BB": to_devkit_boxes(r.boxes[keep]),
            "diff": r.difficult[keep],
            "det": [False] * keep.sum(),
        }
        npos += int((~r.difficult[keep]).sum())
    ids = [d for d in detections if d[3] == cls]
    si = sorted(range(len(ids)), key=lambda k: -ids[k][1])  # MATLAB's sort is stable, as is Python's
    tp, fp = np.zeros(len(ids)), np.zeros(len(ids))
    for d, k in enumerate(si):
        g = gt[ids[k][0]]
        bb = to_devkit_boxes(np.asarray(ids[k][2], dtype=np.float64))
        ovmax, jmax = -math.inf, -1
        for j, bbgt in enumerate(g["BB"]):
            bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
            iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
            if iw > 0 and ih > 0:
                ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (
                    bbgt[3] - bbgt[1] + 1
                )
                ov = iw * ih / (ua - iw * ih)
                if ov > ovmax:
                    ovmax, jmax = ov, j
        if ovmax >= 0.5:
            if not g["diff"][jmax]:
                if not g["det"][jmax]:
                    tp[d] = 1
                    g["det"][jmax] = True
                else:
                    fp[d] = 1
        else:
            fp[d] = 1
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / npos
    prec = np.array([t / (t + f) if t + f > 0 else 0.0 for t, f in zip(tp, fp, strict=True)])
    mrec, mpre = [0.0, *rec, 1.0], [0.0, *prec, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
    ap07 = 0.0
    for t in range(11):
        p = [pr for pr, rc in zip(prec, rec, strict=True) if rc >= t / 10]
        ap07 += (max(p) if p else 0.0) / 11
    return ap, ap07


def test_random_scenes_match_the_devkit_transcription() -> None:
    rng = np.random.default_rng(123)
    records, per_image, flat = [], {}, []
    for n in range(40):
        count = int(rng.integers(0, 5))
        xy = rng.integers(0, 60, size=(count, 2))
        wh = rng.integers(3, 40, size=(count, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
        labels = rng.integers(0, 3, size=count)
        records.append(record(f"{n:03d}", boxes, labels, rng.random(count) < 0.2))
        dets, scores, det_labels = [], [], []
        for box, label in zip(boxes, labels, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 (a duplicate) detections per object
                dets.append(box + rng.integers(-4, 5, size=4))
                scores.append(float(np.float32(round(rng.random(), 1))))  # one decimal: plenty of ties
                det_labels.append(int(label) if rng.random() < 0.9 else int(rng.integers(0, 3)))
        for _ in range(int(rng.integers(0, 3))):  # background false positives
            xy0 = rng.integers(0, 80, size=2)
            dets.append(np.concatenate([xy0, xy0 + rng.integers(2, 30, size=2)]).astype(np.float64))
            scores.append(float(np.float32(round(rng.random(), 1))))
            det_labels.append(int(rng.integers(0, 3)))
        per_image[f"{n:03d}"] = prediction(np.asarray(dets).reshape(-1, 4), scores, det_labels)
        flat += [(f"{n:03d}", s, list(b), lab) for b, s, lab in zip(dets, scores, det_labels, strict=True)]
    evaluator = VOCEvaluator(records=records, class_names=["a", "b", "c"])
    feed(evaluator, per_image)
    expected = [devkit_reference(records, flat, cls) for cls in range(3)]
    assert list(evaluator.per_class_ap().values()) == pytest.approx([e[0] for e in expected], abs=1e-12)
    metrics = evaluator.compute()
    assert metrics["voc_map"] == pytest.approx(np.mean([e[0] for e in expected]), abs=1e-12)
    assert metrics["voc07_map"] == pytest.approx(np.mean([e[1] for e in expected]), abs=1e-12)
    assert 0.2 < metrics["voc_map"] < 0.95  # a non-trivial mix of hits, misses, duplicates and ignores


def write_results(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


@pytest.fixture
def real_voc(tmp_path: Path) -> VOCDetection:
    source = fixture_dir("voc-sample") / "VOCdevkit"
    root = tmp_path / "VOCdevkit"
    shutil.copytree(source, root)
    (root / "VOC2012" / "ImageSets" / "Main").mkdir(parents=True)
    (root / "VOC2012" / "ImageSets" / "Main" / "val.txt").write_text("2007_000063\n2011_003353\n")
    shutil.rmtree(root / "VOC2012" / "JPEGImages")  # scoring a results file needs no pictures
    return VOCDetection(root=root, years=[2012], split="val", require_images=False)


def test_score_voc_results_on_the_real_sample(real_voc: VOCDetection, tmp_path: Path) -> None:
    entries = [
        {
            "image_id": r.image_id,
            "category_id": int(label) + 1,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": 0.9,
        }
        for r in real_voc.records
        for (x0, y0, x1, y1), label in zip(r.boxes.tolist(), r.labels, strict=True)
    ]
    perfect = score_results(real_voc, write_results(tmp_path / "p.json", entries))
    assert (
        perfect["voc_map"] == 1.0
        and perfect["voc07_map"] == pytest.approx(1.0)
        and perfect["map"] == pytest.approx(1.0)
    )
    # drop the chair: dog and person stay perfect, chair has AP 0 -> mean 2/3
    partial = [e for e in entries if e["category_id"] != 9]
    scores = score_results(real_voc, write_results(tmp_path / "q.json", partial))
    assert scores["voc_map"] == pytest.approx(2 / 3) and scores["map"] == pytest.approx(2 / 3)
    assert set(scores) >= {"voc_map", "voc07_map", "map", "map_50", "map_75", "mar_100"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"image_id": 63, "category_id": 12, "bbox": [0, 0, 1, 1], "score": 1}, "file stem"),
        (
            {"image_id": "2007_000063", "category_id": 21, "bbox": [0, 0, 1, 1], "score": 1},
            "1-based class index",
        ),
        ({"image_id": "2007_000063", "category_id": 12, "bbox": [0, 0, 1], "score": 1}, "bbox"),
        ({"image_id": "2007_000063", "category_id": 12, "bbox": [0, 0, 1, 1]}, "needs the keys"),
    ],
)
def test_score_voc_results_rejects_malformed_entries(
    real_voc, tmp_path: Path, entry: dict, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        score_results(real_voc, write_results(tmp_path / "bad.json", [entry]))


def test_plot_data_holds_the_curves_the_ap_integrates(hand_case) -> None:
    records, predictions = hand_case
    evaluator = VOCEvaluator(records=records, class_names=["cat", "dog"])
    feed(evaluator, predictions)
    cat, dog = evaluator.plot_data().pr_curves
    # see hand_case: one point per detection in score order, d2 (on the difficult object) repeating d1's
    np.testing.assert_allclose(cat.recall, [0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(cat.precision, [1.0, 1.0, 0.5, 1 / 3, 0.5])
    assert cat.name == "cat" and cat.ap == evaluator.per_class_ap()["cat"] == pytest.approx(0.75)
    assert dog.name == "dog" and math.isnan(dog.ap)  # no dog in the ground truth
