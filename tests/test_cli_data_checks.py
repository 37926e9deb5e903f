"""Annotation checks through the real CLI: a skipped annotation is listed in the run directory and counted in
results.json, VOC-layout data with its own class names trains and predicts with them, and a split without a usable
object stops the run naming its file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from cvtrain.engine.checkpoints.reading import load_checkpoint
from tests.conftest import FAST, TINY_FASTER_RCNN, make_imagefolder, read_results, run_cli

SIZE = 64
TINY_DETECTOR = (*FAST, *TINY_FASTER_RCNN, "data.batch_size=2")


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, dtype=np.uint8)).save(path)


def obj(name: str, x0: int, y0: int, x1: int, y1: int) -> str:
    box = f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
    return f"<object><name>{name}</name><difficult>0</difficult><bndbox>{box}</bndbox></object>"


def test_voc_layout_with_own_classes_lists_the_skipped_object_and_predicts_with_the_names(
    tmp_path: Path,
) -> None:
    voc = tmp_path / "devkit" / "VOC2012"
    objects = {
        "a": obj("circle", 5, 5, 30, 30) + obj("triangle", 2, 2, 9, 9),  # triangle: not in data.classes
        "b": obj("square", 20, 20, 60, 50),
    }
    for stem, text in objects.items():
        size = f"<size><width>{SIZE}</width><height>{SIZE}</height></size>"
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{size}{text}</annotation>")
        write_image(voc / "JPEGImages" / f"{stem}.jpg")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    run_dir = tmp_path / "fit"
    data = (f"data.root={voc.parent}", "data.years=[2012]", "data.val_years=[2012]", "data.train_split=train")
    proc = run_cli(
        "fit", *TINY_DETECTOR, "data=voc", *data, "data.val_split=train", "data.classes=[circle,square]",
        "data.on_bad_annotation=skip", "trainer.max_steps=1", f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    listing = (run_dir / "bad_annotations.txt").read_text().splitlines()
    assert listing[1].startswith(
        f"skipped\t{voc / 'Annotations' / 'a.xml'}\tobject 1 (triangle)\tclass name 'triangle'"
    )
    results = read_results(run_dir)
    assert results["status"] == "ok" and results["bad_annotations_skipped"] == 1
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["class_names"] == ["circle", "square"]
    assert "circle" in proc.stdout and "square" in proc.stdout  # the per-class table
    run_cli(
        "predict", f"ckpt={run_dir}/checkpoints/last.ckpt", f"inputs={voc / 'JPEGImages'}",
        "predict.score_threshold=0.0", f"hydra.run.dir={tmp_path / 'predict'}", cwd=tmp_path,
    )  # fmt: skip
    records = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    names = {d["class_name"] for r in records for d in r["detections"]}
    assert names and names <= {"circle", "square"}


def test_a_coco_split_without_annotations_stops_naming_the_file(tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"{i}.jpg", "width": SIZE, "height": SIZE} for i in (1, 2, 3)]
    for image in images:
        write_image(tmp_path / "images" / image["file_name"])
    train = tmp_path / "train.json"
    train.write_text(
        json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]})
    )
    proc = run_cli(
        "fit", *TINY_DETECTOR, "data=coco", f"data.train_ann={train}", f"data.val_ann={train}",
        f"data.train_images={tmp_path / 'images'}", f"data.val_images={tmp_path / 'images'}",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert f"{train}: the training split: no usable object: 3 image(s), 0 annotation(s)" in out
    assert not (tmp_path / "run" / "results.json").exists()


def test_an_empty_class_folder_stops_fit_unless_allowed(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "tree", per_class=2)
    (root / "train" / "n04").mkdir()
    args = ("fit", *FAST, "model=small_cnn", "data=imagefolder", f"data.root={root}", "data.image_size=16",
            "data.batch_size=4", "trainer.max_steps=1")  # fmt: skip
    proc = run_cli(*args, f"hydra.run.dir={tmp_path / 'refused'}", cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out
    assert f"{root / 'train' / 'n04'}: class folder 'n04' holds no image file" in out
    assert "set data.allow_empty_classes=true to keep it as a class" in out

    kept = tmp_path / "kept"
    proc = run_cli(*args, "data.allow_empty_classes=true", f"hydra.run.dir={kept}", cwd=tmp_path)
    assert (
        "class folder 'n04' holds no image file" in proc.stdout + proc.stderr
        and "kept as a class" in (kept / "cvtrain.log").read_text()
    )
    checkpoint = load_checkpoint(kept / "checkpoints" / "last.ckpt")
    assert read_results(kept)["status"] == "ok" and checkpoint["class_names"] == ["n01", "n02", "n03", "n04"]
