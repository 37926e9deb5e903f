"""`scripts/peers/score_coco128.py` scores cvtrain's and Ultralytics' predictions on one ground truth built from
the YOLO label files: both tools' ids (a numeric file stem as a number or a string, class index + 1) land on it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_script, write_image

# two images of 40 x 30 px; boxes as YOLO lines (class cx cy w h, normalised)
LABELS = {"000000000009": "0 0.5 0.5 0.5 0.4\n1 0.25 0.25 0.1 0.2\n", "000000000025": "1 0.5 0.5 0.5 0.5\n"}


def coco128_like(root: Path) -> Path:
    for stem, text in LABELS.items():
        write_image(root / "images" / "train" / f"{stem}.jpg", size=(40, 30))
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/train\nnames:\n  0: cat\n  1: dog\n"
    )
    return root / "data.yaml"


def perfect_predictions(image_id_of) -> list[dict]:
    entries = []
    for stem, text in LABELS.items():
        for line in text.splitlines():
            cls, cx, cy, w, h = (float(v) for v in line.split())
            box = [(cx - w / 2) * 40, (cy - h / 2) * 30, w * 40, h * 30]
            entries.append(
                {"image_id": image_id_of(stem), "category_id": int(cls) + 1, "bbox": box, "score": 0.9}
            )
    return entries


def test_both_tools_id_styles_score_a_perfect_detector_at_one(tmp_path: Path) -> None:
    data_yaml = coco128_like(tmp_path / "coco128")
    cvtrain = tmp_path / "cvtrain.json"  # cvtrain: the image's path under the data root, without its suffix
    cvtrain.write_text(json.dumps(perfect_predictions(lambda stem: f"images/train/{stem}")))
    ultralytics = tmp_path / "ultralytics.json"  # Ultralytics: the stem as a number when it is one
    ultralytics.write_text(json.dumps(perfect_predictions(int)))
    out = run_script("peers/score_coco128.py", str(data_yaml), str(cvtrain), str(ultralytics))
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{cvtrain}: pycocotools bbox mAP 1.0000  AP50 1.0000" in out.stdout
    assert f"{ultralytics}: pycocotools bbox mAP 1.0000  AP50 1.0000" in out.stdout


def test_a_class_id_outside_the_ground_truth_is_refused_naming_the_file(tmp_path: Path) -> None:
    data_yaml = coco128_like(tmp_path / "coco128")
    predictions = tmp_path / "coco91.json"
    entries = perfect_predictions(int)
    entries[0]["category_id"] = 90  # COCO's 91-id scheme, not class index + 1
    predictions.write_text(json.dumps(entries))
    out = run_script("peers/score_coco128.py", str(data_yaml), str(predictions))
    assert out.returncode == 1
    assert out.stderr.strip().endswith(f"{predictions}: category_id 90 is not 1..2")
