"""`data=yolo_txt` through the real CLI: our YOLO trains one epoch on a tiny dataset in the Ultralytics layout
(a background image and a malformed label line included, skipped under data.on_bad_annotation=skip) and is scored
with VOC and COCO AP; Mask R-CNN trains on YOLO-seg polygon lines and is scored with mask AP too."""

from __future__ import annotations

import math
import re
from pathlib import Path

from cvtrain.metrics.coco import COCO_METRICS
from tests.conftest import FAST, TINY_FASTER_RCNN, read_results, run_cli
from tests.data.yolo_txt.test_yolo_txt import clean, write_yolo


def test_yolo_fits_one_epoch_on_yolo_txt_data_and_evaluates(tmp_path: Path) -> None:
    root = clean(tmp_path / "ds", names_yaml="names:\n  0: cat\n  1: dog")
    label = root / "labels" / "train" / "a.txt"
    label.write_text(label.read_text() + "1 0.5 0.5\n")  # line 3: three fields
    run_dir = tmp_path / "run"
    run_cli(
        "fit",
        *FAST,
        "model=yolo",
        "model.size=n",
        "data=yolo_txt",
        f"data.root={root}",
        "data.image_size=64",  # aug=yolo letterboxes to it (a multiple of 32)
        "data.batch_size=2",
        "aug=yolo",
        "trainer.epochs=1",
        "data.on_bad_annotation=skip",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    results = read_results(run_dir)
    assert results["status"] == "ok" and results["data"] == "yolo_txt" and results["epochs"] == 1
    assert results["train_images"] == 3 and results["val_images"] == 1
    assert results["monitor"] == "voc_map" and {"voc_map", "voc07_map", *COCO_METRICS} <= results.keys()
    assert results["bad_annotations_skipped"] == 1
    assert f"skipped\t{label}\tline 3\t" in (run_dir / "bad_annotations.txt").read_text()


def test_mask_rcnn_fits_on_yolo_seg_polygons_and_reports_mask_ap(tmp_path: Path) -> None:
    triangle, square = "0 0.25 0.2 0.75 0.2 0.5 0.8", "1 0.1 0.1 0.4 0.1 0.4 0.5 0.1 0.5"
    root = write_yolo(
        tmp_path / "ds",
        train={"a.jpg": f"{triangle}\n{square}\n", "b.jpg": square, "c.jpg": "0 0.5 0.5 0.2 0.2\n"},
        val={"v.jpg": f"{triangle}\n{square}\n"},
    )
    run_dir = tmp_path / "run"
    run_cli(
        "fit", *FAST, "model=mask_rcnn", *TINY_FASTER_RCNN[1:], "data=yolo_txt", f"data.root={root}",
        "data.batch_size=2", "trainer.max_steps=2", "data.on_bad_annotation=skip", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    results = read_results(run_dir)
    assert results["status"] == "ok" and results["steps"] == 2 and results["monitor"] == "voc_map"
    assert all(math.isfinite(results[f"segm_{k}"]) for k in COCO_METRICS)
    assert results["bad_annotations_skipped"] == 1  # c.txt's box line: no outline to learn a mask from
    log = (run_dir / "cvtrain.log").read_text()
    assert "loss_mask=" in log
    rates = re.findall(r"step \d+ .* ([\d.e-]+) img/s", log)
    assert len(rates) == 2 and all(float(r) > 0 for r in rates)  # a CPU detector's 0.5 img/s, not "0 img/s"
