"""COCO box AP computed by pycocotools' own COCOeval, on the dataset's own json.

Metric names, in `COCOeval.stats` order: `map` (AP@[.5:.95]), `map_50`, `map_75`, `map_small`, `map_medium`,
`map_large`, `mar_1`, `mar_10`, `mar_100`, `mar_small`, `mar_medium`, `mar_large`. Values are pycocotools'
unchanged, including its -1 for an area range without any ground truth. With no detections at all every metric
is 0 (pycocotools cannot load an empty result list).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from rich.table import Table

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.plots import PlotData, PRCurve
from cvtrain.errors import DataError

log = logging.getLogger(__name__)

COCO_METRICS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


def evaluate_bbox(
    coco_gt: COCO, detections: list[dict[str, Any]], *, image_ids: Sequence[int] | None = None
) -> tuple[dict[str, float], COCOeval | None]:
    """Run COCOeval(iouType="bbox") on COCO-format detections (ids of the ground-truth file).

    `image_ids` restricts the evaluated images (default: every image of `coco_gt`, as the official scripts do).
    """
    if not detections or (image_ids is not None and not len(image_ids)):
        log.warning("COCO AP: no detections to evaluate; every metric is 0")
        return dict.fromkeys(COCO_METRICS, 0.0), None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        # loadRes adds keys (area, id, segmentation) to each dict: give it copies.
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        evaluation = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            evaluation.params.imgIds = sorted(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return dict(zip(COCO_METRICS, (float(v) for v in evaluation.stats), strict=True)), evaluation


class COCOEvaluator(Evaluator):
    """COCO box AP of a detector over the images seen by `update` (every image, after a full pass).

    Labels map back to the file's category ids through `label_to_cat_id`; `image_id_map` maps the dataset's
    image ids (`meta["image_id"]`) to the ids in `coco_gt` when they differ (VOC stems -> the COCO view's ints).
    `results()` keeps the dataset's own image ids: it is what predictions.json holds.
    """

    def __init__(
        self,
        *,
        coco_gt: COCO,
        label_to_cat_id: Mapping[int, int],
        image_id_map: Mapping[Hashable, int] | None = None,
    ):
        self.coco_gt = coco_gt
        self.label_to_cat_id = {int(k): int(v) for k, v in label_to_cat_id.items()}
        self.image_id_map = dict(image_id_map) if image_id_map is not None else None
        self.reset()

    def reset(self) -> None:
        self._results: dict[Hashable, list[dict[str, Any]]] = {}
        self._evaluation: COCOeval | None = None

    def _coco_id(self, image_id: Hashable) -> int:
        coco_id = image_id if self.image_id_map is None else self.image_id_map.get(image_id)
        if coco_id not in self.coco_gt.imgs:
            raise DataError(f"image id {image_id!r} is not an image of the COCO ground truth")
        return int(coco_id)

    def add(self, image_id: Hashable, boxes: Any, scores: Any, labels: Any) -> None:
        """Record one image's detections (boxes XYXY in original pixels, contiguous 0-based labels)."""
        self._coco_id(image_id)
        boxes = _numpy(boxes).astype(np.float64).reshape(-1, 4)
        scores = _numpy(scores).astype(np.float64).reshape(-1)
        labels = _numpy(labels).astype(np.int64).reshape(-1)
        unknown = sorted({int(v) for v in labels} - set(self.label_to_cat_id))
        if unknown:
            raise ValueError(f"labels {unknown} of image {image_id!r} have no category id in label_to_cat_id")
        self._results[image_id] = [
            {
                "image_id": image_id,
                "category_id": self.label_to_cat_id[int(label)],
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "score": float(score),
            }
            for (x0, y0, x1, y1), score, label in zip(boxes, scores, labels, strict=True)
        ]
        self._evaluation = None

    def update(self, batch: Batch, predictions: Sequence[dict[str, torch.Tensor]]) -> None:
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            self.add(meta["image_id"], prediction["boxes"], prediction["scores"], prediction["labels"])

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, COCOEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into COCOEvaluator")
        self._results.update(other._results)
        self._evaluation = None

    def results(self) -> list[dict[str, Any]]:
        """COCO results format (`image_id` as in the dataset, file category ids, [x, y, w, h], score)."""
        ordered = sorted(self._results, key=self._coco_id)
        return [result for image_id in ordered for result in self._results[image_id]]

    def compute(self) -> dict[str, float]:
        detections = [{**r, "image_id": self._coco_id(r["image_id"])} for r in self.results()]
        image_ids = [self._coco_id(image_id) for image_id in self._results]
        metrics, self._evaluation = evaluate_bbox(self.coco_gt, detections, image_ids=image_ids)
        return metrics

    def plot_data(self) -> PlotData:
        if self._evaluation is None:
            return PlotData()
        names = {cat_id: str(cat["name"]) for cat_id, cat in self.coco_gt.cats.items()}
        curves = coco_pr_curves(self._evaluation, names)
        return PlotData(pr_curves=curves, pr_title="precision-recall at IoU 0.5 (COCO, 101 recall points)")

    def report(self) -> Table | None:
        """Per-category AP@[.5:.95] from the last `compute()` (None before it or without detections)."""
        if self._evaluation is None:
            return None
        precision = self._evaluation.eval["precision"]  # [IoU, recall, category, area, max dets]
        table = Table(title="COCO AP@[.5:.95] per category")
        table.add_column("category")
        table.add_column("id", justify="right")
        table.add_column("AP", justify="right")
        for k, cat_id in enumerate(self._evaluation.params.catIds):
            values = precision[:, :, k, 0, -1]
            ap = float(values[values > -1].mean()) if (values > -1).any() else math.nan
            table.add_row(
                str(self.coco_gt.cats[cat_id]["name"]), str(cat_id), "-" if math.isnan(ap) else f"{ap:.4f}"
            )
        return table


def coco_pr_curves(evaluation: Any, names: Mapping[int, str]) -> list[PRCurve]:
    """Precision at COCO's 101 recall thresholds, IoU 0.5, all areas, 100 detections, per category (from
    `eval["precision"]`, which pycocotools and faster-coco-eval both fill), and its mean (AP@0.5); a category
    without ground truth (-1) is left out."""
    precision = evaluation.eval["precision"][0, :, :, 0, -1]  # [recall, category]
    recall = np.asarray(evaluation.params.recThrs, dtype=np.float64)
    curves = []
    for k, cat_id in enumerate(evaluation.params.catIds):
        values = precision[:, k]
        if (values > -1).any():
            curves.append(PRCurve(names[cat_id], recall, np.clip(values, 0, None), float(values.mean())))
    return curves


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
