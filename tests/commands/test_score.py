"""`cvtrain eval predictions=FILE` without a model: score_predictions_file on composed configs (the CLI path for the
COCO API's fixture is in tests/test_cli_detection.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from pycocotools.coco import COCO

from cvtrain.commands.score import score_predictions_file
from cvtrain.contracts.batch import Batch
from cvtrain.data.splits import build_data
from cvtrain.errors import ConfigError, DataError
from cvtrain.metrics.coco import COCO_METRICS
from cvtrain.tasks.detection import DetectionTask
from cvtrain.tasks.detection_outputs import DetectionOutputs
from tests.conftest import OFFICIAL_COCO_STATS, PARITY_RESULTS, compose_config, fixture_dir, same_coco_stats
from tests.data.coco.test_instance_masks import with_garbage_rle


def jittered_predictions(dataset) -> Iterator[tuple[Batch, list[dict[str, torch.Tensor]]]]:
    """Each object found with a shifted box (some shifts too far to count), plus a false positive per image."""
    generator = torch.Generator().manual_seed(11)
    for index in range(len(dataset)):
        _, target, meta = dataset[index]
        boxes = target["boxes"].as_subclass(torch.Tensor)
        boxes = torch.cat(
            [boxes + torch.randn(len(boxes), 4, generator=generator) * 3, torch.tensor([[1.0, 1, 20, 20]])]
        )
        labels = torch.cat([target["labels"], torch.tensor([index % 5])])
        scores = torch.rand(len(labels), generator=generator)
        yield (
            Batch(images=[], targets=[], meta=[meta]),
            [{"boxes": boxes, "scores": scores, "labels": labels}],
        )


@pytest.mark.parametrize("layout", ["voc", "coco"])
def test_a_saved_predictions_file_scores_like_the_evaluation_that_wrote_it(
    tmp_path: Path, layout: str
) -> None:
    data = (
        "data=shapes", f"data.cache_dir={tmp_path / 'cache'}", "data.scene_size=64", "data.train_images=1",
        "data.val_images=8", f"data.layout={layout}",
    )  # fmt: skip
    cfg = compose_config("model=faster_rcnn", *data)
    val = build_data(cfg.data, aug=cfg.aug, task="detection", need_train=False).val
    task = DetectionTask(class_names=val.class_names)
    outputs = DetectionOutputs(class_names=val.class_names)
    evaluator, sink = task.evaluator(val), outputs.results_writer(val, tmp_path)
    for batch, predictions in jittered_predictions(val):
        evaluator.update(batch, predictions)
        sink.update(batch, predictions)
    sink.write()
    expected = evaluator.compute()
    # no model and the default model group (a classifier): scoring needs neither
    results = score_predictions_file(compose_config(*data, f"predictions={tmp_path / 'predictions.json'}"))
    assert {k: results[k] for k in expected} == expected and results["status"] == "ok"
    assert (
        0.1 < results["map"] < 0.9
        and ("voc_map" in results) == (layout == "voc")
        and results["data"] == f"shapes ({layout} layout)"
    )


def test_the_official_fixture_scores_from_the_annotation_file_alone() -> None:
    parity = fixture_dir("coco-eval-parity")
    results = score_predictions_file(
        compose_config(
            "data=coco",
            f"data.val_ann={parity / 'instances_val2014_100.json'}",
            f"predictions={parity / 'instances_val2014_fakebbox100_results.json'}",
        )
    )
    assert results["map"] == pytest.approx(0.5045806987249628, abs=0) and len(COCO_METRICS) == 12


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_mask_results_score_as_segm_with_either_backend(backend: str) -> None:
    parity = fixture_dir("coco-eval-parity")
    results = score_predictions_file(
        compose_config(
            "data=coco",
            f"data.val_ann={parity / 'instances_val2014_100.json'}",
            f"predictions={parity / PARITY_RESULTS['segm']}",
            f"eval.coco_backend={backend}",
        )
    )
    names = [f"segm_{name}" for name in COCO_METRICS]
    assert same_coco_stats([results[k] for k in names], OFFICIAL_COCO_STATS["segm"])
    assert "map" not in results  # masks only: the boxes of a segm file are not scored as boxes


def test_bad_mask_results_name_the_entry(tmp_path: Path) -> None:
    parity = fixture_dir("coco-eval-parity")
    entries = json.loads((parity / PARITY_RESULTS["segm"]).read_text())[:3]
    ann = f"data.val_ann={parity / 'instances_val2014_100.json'}"
    cases = [
        ({"segmentation": [[1.0, 2.0, 3.0, 4.0, 5.0, 1.0]]}, "entry 1 has segmentation.*RLE"),
        (
            {"segmentation": {**entries[1]["segmentation"], "size": [10, 10]}},
            r"entry 1 has a mask of size \[10, 10\]",
        ),
        ({"segmentation": None, "bbox": [1, 2, 3, 4]}, "entry 1 has segmentation"),
        (
            {"segmentation": {**entries[1]["segmentation"], "counts": "garbage!!"}},
            "entry 1: segmentation RLE counts 'garbage!!' is not a compressed RLE",
        ),
    ]
    for change, message in cases:
        (tmp_path / "r.json").write_text(json.dumps([entries[0], {**entries[1], **change}, entries[2]]))
        with pytest.raises(DataError, match=message):
            score_predictions_file(compose_config("data=coco", ann, f"predictions={tmp_path / 'r.json'}"))
    with pytest.raises(ConfigCompositionException, match="eval.coco_backend=fast"):
        compose_config("data=coco", ann, "eval.coco_backend=fast")  # a typed key: faster | pycocotools


def test_voc_data_scores_without_the_images(tmp_path: Path) -> None:
    year = tmp_path / "VOCdevkit" / "VOC2007"
    (year / "Annotations").mkdir(parents=True)
    (year / "ImageSets" / "Main").mkdir(parents=True)
    (year / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    (year / "Annotations" / "000001.xml").write_text(
        "<annotation><size><width>50</width><height>40</height></size><object><name>dog</name>"
        "<difficult>0</difficult><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>25</ymax></bndbox>"
        "</object></annotation>"
    )
    found = [{"image_id": "000001", "category_id": 12, "bbox": [10, 5, 20, 20], "score": 0.9}]
    (tmp_path / "found.json").write_text(json.dumps(found))
    cfg = compose_config(
        "data=voc", f"data.root={tmp_path / 'VOCdevkit'}", f"predictions={tmp_path / 'found.json'}"
    )
    results = score_predictions_file(cfg)
    assert results["voc_map"] == 1.0 and results["voc07_map"] == pytest.approx(1.0)  # 11 x 1/11
    assert results["map"] == pytest.approx(1.0)
    wrong = [{**found[0], "category_id": 0}]
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    with pytest.raises(DataError, match="1-based class index"):
        score_predictions_file(
            compose_config(
                "data=voc", f"data.root={tmp_path / 'VOCdevkit'}", f"predictions={tmp_path / 'wrong.json'}"
            )
        )


def test_other_data_cannot_be_scored(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text("[]")
    with pytest.raises(ConfigError, match="data=synthetic provides classification data"):
        score_predictions_file(compose_config("data=synthetic", f"predictions={tmp_path / 'p.json'}"))


@pytest.mark.parametrize("backend", ["faster", "pycocotools"])
def test_a_garbage_crowd_rle_in_the_annotations_follows_the_policy(tmp_path: Path, backend: str) -> None:
    """Mask results are scored against the annotations' masks: a crowd region whose RLE does not decode is an
    error naming it, or skipped (and not scored) under data.on_bad_annotation=skip, never a COCOeval crash."""
    ann_file, crowd = with_garbage_rle(tmp_path, crowd=True)
    gt = COCO(str(fixture_dir("coco-sample") / "annotations.json"))
    found = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": rle, "score": 1.0}
        for a in gt.dataset["annotations"]
        if not a["iscrowd"]
        for rle in [gt.annToRLE(a)]
    ]
    for entry in found:
        entry["segmentation"]["counts"] = entry["segmentation"]["counts"].decode("ascii")
    (tmp_path / "found.json").write_text(json.dumps(found))
    args = ("data=coco", f"data.val_ann={ann_file}", f"predictions={tmp_path / 'found.json'}")
    with pytest.raises(DataError, match=f"annotation id {crowd['id']} .*'garbage!!' is not a compressed RLE"):
        score_predictions_file(compose_config(*args, f"eval.coco_backend={backend}"))
    results = score_predictions_file(
        compose_config(*args, f"eval.coco_backend={backend}", "data.on_bad_annotation=skip")
    )
    assert results["segm_map"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": [1, 2, "3", 4]}, r"entry 57 has bbox \[1, 2, '3', 4\]: expected \[x, y, width, height\]"),
        ({"bbox": [1, 2, 3]}, r"entry 57 has bbox \[1, 2, 3\]"),
        ({"bbox": [1, 2, float("inf"), 4]}, r"entry 57 has bbox \[1, 2, inf, 4\]"),
        ({"score": True}, "entry 57 has score True: expected a finite number"),
        ({"score": float("nan")}, "entry 57 has score nan"),
        ({"score": None}, "entry 57 has score None"),
        ({"image_id": 999999999}, "entry 57 has image_id 999999999, not in the annotations"),
        ({"image_id": [1]}, r"entry 57 has image_id \[1\], not in the annotations"),
        ({"category_id": 0}, "entry 57 has category_id 0, not in the annotations"),
        ({"category_id": {"id": 1}}, "entry 57 has category_id {.id.: 1}, not in the annotations"),
    ],
)
def test_a_bad_entry_deep_in_a_results_file_is_named(tmp_path: Path, change: dict, message: str) -> None:
    # the file's columns are checked in bulk; the one bad entry is still named with what is wrong with it
    parity = fixture_dir("coco-eval-parity")
    entries = json.loads((parity / "instances_val2014_fakebbox100_results.json").read_text())
    entries[57] = {**entries[57], **change}
    results = tmp_path / "results.json"
    results.write_text(json.dumps(entries))
    cfg = compose_config(
        "data=coco", f"data.val_ann={parity / 'instances_val2014_100.json'}", f"predictions={results}"
    )
    with pytest.raises(DataError, match=message):
        score_predictions_file(cfg)
