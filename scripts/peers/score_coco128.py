"""Score detections on a YOLO-txt split with pycocotools, the same ground truth for every tool.

    python scripts/peers/score_coco128.py DATA_YAML PREDICTIONS.json [PREDICTIONS.json ...]

The ground truth is built from the split's label files (`val:` of DATA_YAML): a COCO image per image file (id: the
file stem as a number when it is one, as both cvtrain and Ultralytics write it), a box per label line in pixels,
category id = class index + 1. Predictions are COCO results files: cvtrain's `predictions.json`
(`cvtrain eval ckpt=... eval.save_predictions=true`) and Ultralytics' `predictions.json` (`save_json=True`) both
use class index + 1 for a dataset that is not COCO itself; an id out of that range is refused, naming the file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import yaml
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def image_id(name: str) -> int | str:
    """Ultralytics names an image by its stem (as a number when it is one), cvtrain by its path under the data
    root without the suffix (`images/train/000000000009`): both come to the stem."""
    stem = Path(name).name
    return int(stem) if stem.isdigit() else stem


def ground_truth(data_yaml: Path) -> dict:
    spec = yaml.safe_load(data_yaml.read_text())
    root = data_yaml.parent / spec.get("path", ".")  # relative to the yaml, as Ultralytics reads it
    image_dir = root / spec["val"]
    label_dir = Path(str(image_dir).replace("/images", "/labels"))  # Ultralytics' images/ -> labels/ rule
    names = spec["names"]
    names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)
    images, annotations = [], []
    for path in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        width, height = Image.open(path).size
        images.append({"id": image_id(path.stem), "file_name": path.name, "width": width, "height": height})
        labels = label_dir / f"{path.stem}.txt"
        for line in labels.read_text().splitlines() if labels.exists() else []:
            cls, cx, cy, w, h = (float(v) for v in line.split()[:5])
            box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": images[-1]["id"],
                    "category_id": int(cls) + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def score(gt: COCO, predictions: Path) -> list[float]:
    entries = json.loads(predictions.read_text())
    for entry in entries:
        entry["image_id"] = image_id(str(entry["image_id"]))
        if entry["category_id"] not in gt.cats:
            raise SystemExit(f"{predictions}: category_id {entry['category_id']} is not 1..{len(gt.cats)}")
    evaluator = COCOeval(gt, gt.loadRes(entries), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [float(v) for v in evaluator.stats[:2]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_yaml", type=Path)
    parser.add_argument("predictions", type=Path, nargs="+")
    args = parser.parse_args()
    gt = COCO()
    gt.dataset = ground_truth(args.data_yaml)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    for path in args.predictions:
        mAP, ap50 = score(gt, path)
        print(f"{path}: pycocotools bbox mAP {mAP:.4f}  AP50 {ap50:.4f}")


if __name__ == "__main__":
    main()
