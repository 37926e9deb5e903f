"""`cvtrain eval predictions=FILE`: score a saved COCO-format results file, with no model and no images.

    cvtrain eval data=coco data.val_ann=instances_val2017.json predictions=results.json
    cvtrain eval data=voc data.root=VOCdevkit predictions=predictions.json     # data.val_years, data.val_split
    cvtrain eval data=shapes predictions=predictions.json                      # data.layout picks the copy

The validation split's annotations come from the data builder (`require_images=False`) and are scored by what
they provide: COCO files by COCOeval exactly as the official evaluation does (`map`, `map_50`, ... in
`COCOeval.stats` order, every image of the file; `eval.coco_backend` picks faster-coco-eval or pycocotools); VOC
data by the devkit's `voc_map` / `voc07_map` and COCO AP on its COCO view. This is how another detector's output,
or our own `eval.save_predictions=true` file, is re-scored. A file whose entries carry `segmentation` (RLE masks,
Mask R-CNN's output) is also scored as masks (COCOeval iouType `segm`: `segm_map`, `segm_map_50`, ...) on COCO
data; entries with masks and no boxes are scored as masks only.
"""

from __future__ import annotations

import json
import math
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.config import Config
from cvtrain.contracts.ground_truth import DetectionGroundTruth
from cvtrain.data.annotations.coco_checks import segmentation_problem
from cvtrain.data.splits import build_data
from cvtrain.errors import ConfigError, DataError
from cvtrain.metrics.coco import evaluate_coco
from cvtrain.metrics.detection import coco_evaluator
from cvtrain.metrics.voc import VOCEvaluator


def read_results_file(results_file: str | Path) -> list[dict[str, Any]]:
    """Read and check a COCO results json: a list of {image_id, category_id, bbox [x, y, w, h], score}, or of
    {image_id, category_id, segmentation (RLE {size, counts}), score} (a bbox beside it is allowed)."""
    path = Path(results_file).expanduser()
    if not path.is_file():
        raise DataError(f"results file {path} does not exist")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    if not isinstance(entries, list):
        raise DataError(
            f"{path}: a COCO results file is a JSON list of detections, got {type(entries).__name__}"
        )
    masks = bool(entries) and isinstance(entries[0], dict) and "segmentation" in entries[0]
    shape = "segmentation" if masks else "bbox"
    if not masks and _well_formed_boxes(entries):
        return entries  # the common case, checked in bulk; the loop below words the first problem
    for index, entry in enumerate(entries):
        where = f"{path}: entry {index}"
        if not isinstance(entry, dict) or any(
            k not in entry for k in ("image_id", "category_id", shape, "score")
        ):
            raise DataError(
                f"{where} needs the keys image_id, category_id, {shape} and score (as entry 0): {entry!r}"
            )
        bbox, score = entry.get("bbox"), entry["score"]
        if (bbox is not None or not masks) and not (
            isinstance(bbox, list) and len(bbox) == 4 and all(_finite_number(v) for v in bbox)
        ):
            raise DataError(f"{where} has bbox {bbox!r}: expected [x, y, width, height] (finite numbers)")
        if masks and not _is_rle(entry["segmentation"]):
            raise DataError(
                f"{where} has segmentation {str(entry['segmentation'])[:80]!r}: expected an RLE mask "
                '{"size": [height, width], "counts": "..."} (pycocotools.mask.encode)'
            )
        if not _finite_number(score):
            raise DataError(f"{where} has score {score!r}: expected a finite number")
    return entries


def _well_formed_boxes(entries: list[Any]) -> bool:
    """Every entry a dict with image_id, category_id, a bbox of four finite numbers and a finite score: checked on
    whole columns (a val2017 results file has ~312k entries), not entry by entry."""
    keys = {"image_id", "category_id", "bbox", "score"}
    if not all(type(entry) is dict and keys <= entry.keys() for entry in entries):
        return False
    boxes = [entry["bbox"] for entry in entries]
    if set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}:
        return False
    return _finite_numbers(list(chain.from_iterable(boxes))) and _finite_numbers(
        [e["score"] for e in entries]
    )


def _finite_numbers(values: list[Any]) -> bool:
    """All `values` are finite ints or floats (bools, strings and None are not)."""
    return set(map(type, values)) <= {int, float} and bool(
        np.isfinite(np.asarray(values, dtype=np.float64)).all()
    )


def iou_types_of(entries: list[dict[str, Any]]) -> list[str]:
    """What a results file is scored as: `bbox` when its entries have boxes, `segm` when they have masks (both
    for Mask R-CNN's predictions.json; masks alone for the COCO API's fake segm results)."""
    if not entries or "segmentation" not in entries[0]:
        return ["bbox"]
    return ["bbox", "segm"] if all("bbox" in entry for entry in entries) else ["segm"]


def _is_rle(segmentation: Any) -> bool:
    return (
        isinstance(segmentation, dict)
        and isinstance(segmentation.get("counts"), str | list)
        and isinstance(segmentation.get("size"), list)
        and len(segmentation["size"]) == 2
        and all(isinstance(v, int) and v > 0 for v in segmentation["size"])
    )


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def score_coco(
    truth: DetectionGroundTruth, entries: list[dict[str, Any]], source: str, backend: str = "faster"
) -> dict[str, float]:
    """Every image of the annotation file counts, as in the official evaluation."""
    coco_gt = truth.coco_ground_truth().coco
    iou_types = iou_types_of(entries)
    # the ids on whole columns; entry by entry for masks (each RLE checked) and to name a wrong id
    if "segm" in iou_types or not _known_ids(entries, coco_gt):
        _check_entries(entries, coco_gt, iou_types, source)
    metrics: dict[str, float] = {}
    for iou_type in iou_types:
        metrics.update(evaluate_coco(coco_gt, entries, iou_type=iou_type, backend=backend)[0])
    return metrics


def _check_entries(entries: list[dict[str, Any]], coco_gt: Any, iou_types: list[str], source: str) -> None:
    """Each entry's image and category are in the annotations, and its mask (for `segm`) fits its image."""
    for index, entry in enumerate(entries):
        if (
            isinstance(entry["image_id"], list | dict) or entry["image_id"] not in coco_gt.imgs
        ):  # JSON: [..], {..}
            raise DataError(
                f"{source}: entry {index} has image_id {entry['image_id']!r}, not in the annotations"
            )
        image = coco_gt.imgs[entry["image_id"]]
        if "segm" in iou_types and entry["segmentation"]["size"] != [image["height"], image["width"]]:
            raise DataError(
                f"{source}: entry {index} has a mask of size {entry['segmentation']['size']} but image "
                f"{entry['image_id']} is {image['height']} x {image['width']} (height x width) in the annotations"
            )
        problem = "segm" in iou_types and segmentation_problem(
            entry["segmentation"], image["height"], image["width"]
        )
        if problem:  # pycocotools and faster-coco-eval trust an RLE string: a malformed one crashes them
            raise DataError(f"{source}: entry {index}: {problem}")
        if isinstance(entry["category_id"], list | dict) or entry["category_id"] not in coco_gt.cats:
            raise DataError(
                f"{source}: entry {index} has category_id {entry['category_id']!r}, not in the annotations "
                "(use the file's category ids, not contiguous training labels)"
            )


def _known_ids(entries: list[dict[str, Any]], coco_gt: Any) -> bool:
    """Every entry's image_id and category_id are in the annotations (checked on whole columns)."""
    try:
        images = {entry["image_id"] for entry in entries}
        categories = {entry["category_id"] for entry in entries}
    except TypeError:  # an unhashable id: the loop names it
        return False
    return images <= coco_gt.imgs.keys() and categories <= coco_gt.cats.keys()


def score_voc(
    truth: DetectionGroundTruth, entries: list[dict[str, Any]], source: str, backend: str = "faster"
) -> dict[str, float]:
    """Entries: `image_id` = VOC file stem, `category_id` = 1-based class index, `bbox` = [x, y, w, h] in
    continuous 0-based pixels. Every image of the split counts (one without detections has its objects missed).
    Returns `voc_map`, `voc07_map` and the COCO metrics on the COCO view of the same annotations."""
    if "segm" in iou_types_of(entries):
        raise DataError(
            f"{source} holds masks (segmentation): masks are scored on COCO-format data (data=coco)"
        )
    records = truth.voc_records() or []
    num_classes = len(truth.class_names)
    per_image: dict[str, list[tuple[list[float], float, int]]] = {r.image_id: [] for r in records}
    for index, entry in enumerate(entries):
        where = f"{source}: entry {index}"
        image_id, category_id = entry["image_id"], entry["category_id"]
        if not isinstance(image_id, str) or image_id not in per_image:
            raise DataError(
                f"{where} has image_id {image_id!r}, which is not an image of the VOC split (use the file stem, "
                f"e.g. {next(iter(per_image), '2007_000001')!r})"
            )
        if not isinstance(category_id, int) or not 1 <= category_id <= num_classes:
            raise DataError(
                f"{where} has category_id {category_id!r}: use the 1-based class index 1..{num_classes}"
            )
        x, y, w, h = entry["bbox"]
        per_image[image_id].append(([x, y, x + w, y + h], entry["score"], category_id - 1))
    voc = VOCEvaluator(records=records, class_names=truth.class_names)
    coco = coco_evaluator(truth, backend)
    for image_id, detections in per_image.items():
        boxes = np.asarray([d[0] for d in detections], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray([d[1] for d in detections], dtype=np.float64)
        labels = np.asarray([d[2] for d in detections], dtype=np.int64)
        voc.add(image_id, boxes, scores, labels)
        coco.add(image_id, boxes, scores, labels)
    return {**voc.compute(), **coco.compute()}


def score_results(
    truth: DetectionGroundTruth, results_file: str | Path, backend: str = "faster"
) -> dict[str, float]:
    """The metrics of a COCO-format results file on `truth`, by what the ground truth provides; COCO AP by
    `backend` (faster | pycocotools)."""
    return score_entries(truth, read_results_file(results_file), str(results_file), backend)


def score_entries(
    truth: DetectionGroundTruth, entries: list[dict[str, Any]], source: str, backend: str = "faster"
) -> dict[str, float]:
    """`score_results` of the checked entries of the results file `source`."""
    score = score_voc if truth.voc_records() is not None else score_coco
    return score(truth, entries, source, backend)


def score_predictions_file(cfg: Config) -> dict[str, Any]:
    """The metrics of `cfg.predictions` on the validation split of `cfg.data` (what `cvtrain eval` prints)."""
    entries = read_results_file(cfg.predictions)
    # Masks are scored against the annotations' masks: COCO data then reads and checks them (as model=mask_rcnn
    # does), so a broken one follows data.on_bad_annotation instead of crashing COCOeval.
    masks = "segm" in iou_types_of(entries) and cfg.data.format == "coco"
    task = "instance_segmentation" if masks else "detection"
    splits = build_data(cfg.data, aug=cfg.aug, task=task, need_train=False, require_images=False)
    truth = splits.val
    if not isinstance(truth, DetectionGroundTruth):
        raise ConfigError(
            f"predictions= scores detections on data=coco, data=voc or data=shapes, not data={cfg.data.format}"
        )
    metrics = score_entries(truth, entries, str(cfg.predictions), str(cfg.eval.coco_backend))
    layout = f" ({cfg.data.layout.value} layout)" if cfg.data.format == "shapes" else ""
    return {
        "status": "ok",
        **metrics,
        "predictions": str(cfg.predictions),
        "data": f"{cfg.data.format}{layout}",
    }
