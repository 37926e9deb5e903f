"""Random COCO ground truth and detections, seeded: what the COCO evaluators are checked and timed on.

Images of 640 x 480 with objects of every COCO size range, a few crowd regions (RLE masks, as COCO stores them),
images without objects, categories without any object, images without detections; detections are jittered copies
of the objects (some with the wrong category, some twice) plus background boxes, as a detector's output looks.
With `masks=True` every object also has a polygon (crowd regions an RLE) and every detection an RLE mask, so the
same set scores `segm` too. `scripts/bench_coco_eval.py` sizes it like COCO val2017; the tests keep it small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

WIDTH, HEIGHT = 640, 480
SIDES = (12.0, 24.0, 48.0, 90.0, 160.0, 300.0)  # small (< 32^2), medium and large objects


@dataclass(frozen=True)
class SyntheticCOCO:
    images: int = 50
    objects_per_image: float = 7.55  # val2017: 36,781 boxes on 5,000 images (2% of them empty here)
    detections_per_image: float = 64.0  # a detector's val2017 output: ~312k detections
    categories: int = 80
    empty_categories: int = 2  # categories of the file without any object
    empty_images: float = 0.02  # fraction of images without objects
    undetected_images: float = 0.02  # fraction of images without any detection
    crowd: float = 0.01  # fraction of objects that are crowd regions
    masks: bool = False


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    """A random star-shaped polygon inside the box [x, y, w, h] (COCO's flat [x0, y0, x1, y1, ...])."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(5, 12))))
    radii = rng.uniform(0.5, 1.0, size=len(angles))
    xs = x + w / 2 * (1 + radii * np.cos(angles))
    ys = y + h / 2 * (1 + radii * np.sin(angles))
    return [float(v) for v in np.stack([xs, ys], axis=1).reshape(-1)]


def _rle(polygon: list[float]) -> dict[str, Any]:
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], HEIGHT, WIDTH))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _objects(rng: np.random.Generator, spec: SyntheticCOCO, image_id: int, cat_ids: list[int]) -> list[dict]:
    count = 0 if rng.random() < spec.empty_images else int(rng.poisson(spec.objects_per_image))
    objects = []
    for _ in range(count):
        side = float(rng.choice(SIDES)) * float(rng.uniform(0.7, 1.3))
        w, h = side * float(rng.uniform(0.6, 1.6)), side
        w, h = min(w, WIDTH - 1.0), min(h, HEIGHT - 1.0)
        x, y = float(rng.uniform(0, WIDTH - w)), float(rng.uniform(0, HEIGHT - h))
        crowd = int(rng.random() < spec.crowd)
        obj = {"image_id": image_id, "category_id": int(rng.choice(cat_ids)), "bbox": [x, y, w, h]}
        obj.update(iscrowd=crowd, area=w * h)
        if spec.masks:
            polygon = _polygon(rng, x, y, w, h)
            obj["segmentation"] = _rle(polygon) if crowd else [polygon]
            obj["area"] = float(mask_utils.area(mask_utils.frPyObjects([polygon], HEIGHT, WIDTH)).sum())
        objects.append(obj)
    return objects


def _detections(
    rng: np.random.Generator, spec: SyntheticCOCO, objects: list[dict], cat_ids: list[int]
) -> list:
    """About `detections_per_image`: jittered copies of the objects, then background boxes (of any category,
    those without objects included)."""
    wanted = int(rng.poisson(spec.detections_per_image))
    found = []
    for obj in objects:
        x, y, w, h = obj["bbox"]
        for _ in range(int(rng.integers(0, 3))):
            jitter = rng.normal(0, 0.1, size=4) * [w, h, w, h]
            wrong = rng.random() < 0.1
            category = int(rng.choice(cat_ids)) if wrong else obj["category_id"]
            box = [x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]]
            outline = obj.get("segmentation")
            if isinstance(outline, list):  # the object's own polygon, its points jittered
                outline = [
                    float(v)
                    for v in np.asarray(outline[0]) + rng.normal(0, 0.04 * min(w, h), len(outline[0]))
                ]
            found.append((category, box, float(rng.uniform(0.2, 1.0)), outline))
    while len(found) < wanted:
        w, h = (float(v) for v in rng.uniform(8, 250, size=2))
        box = [rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h), w, h]
        found.append((int(rng.choice(cat_ids)), box, float(rng.uniform(0.0, 0.6)), None))
    detections = []
    for category, box, score, outline in found:
        x, y, w, h = (float(v) for v in box)
        w, h = max(w, 1.0), max(h, 1.0)
        detection = {"category_id": category, "bbox": [x, y, w, h], "score": score}
        if spec.masks:
            detection["segmentation"] = _rle(
                outline if isinstance(outline, list) else _polygon(rng, x, y, w, h)
            )
        detections.append(detection)
    return detections


def synthetic_coco(spec: SyntheticCOCO, seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(ground truth dict in the instances-json format, detections in the COCO results format)."""
    rng = np.random.default_rng(seed)
    all_ids = [int(i) for i in sorted(rng.choice(np.arange(1, 3 * spec.categories), spec.categories, False))]
    cat_ids = all_ids[spec.empty_categories :]  # non-contiguous ids, the first few never used
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": c, "name": f"class{c}"} for c in all_ids],
    }
    results: list[dict[str, Any]] = []
    for index in range(spec.images):
        image_id = 10 * index + 7
        gt["images"].append(
            {"id": image_id, "file_name": f"{image_id}.jpg", "width": WIDTH, "height": HEIGHT}
        )
        objects = _objects(rng, spec, image_id, cat_ids)
        for obj in objects:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, **obj})
        if rng.random() >= spec.undetected_images:
            results += [{"image_id": image_id, **d} for d in _detections(rng, spec, objects, all_ids)]
    return gt, results
