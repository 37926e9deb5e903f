"""COCO AP (boxes and masks) by COCOeval: faster-coco-eval's C++ port by default, pycocotools' own as reference.

Metric names, in `COCOeval.stats` order: `map` (AP@[.5:.95]), `map_50`, `map_75`, `map_small`, `map_medium`,
`map_large`, `mar_1`, `mar_10`, `mar_100`, `mar_small`, `mar_medium`, `mar_large`; mask AP the same with a
`segm_` prefix. Values are COCOeval's unchanged, including its -1 for an area range without any ground truth.
With no detections at all every metric is 0 (pycocotools cannot load an empty result list).

The two backends (`eval.coco_backend=faster|pycocotools`) agree on every matched pair, recall and score; their
precision differs in one place only: pycocotools divides by `tp + fp + np.spacing(1)`, the C++ code by `tp + fp`.
For `tp + fp >= 2` the spacing rounds away (half an ulp or less, ties to even); at `tp + fp == 1` pycocotools
gives 1 - 2**-52 where faster-coco-eval gives 1.0. A stat is a mean of such values, so the two differ by at most
2.2e-16 (tests/metrics/test_coco_backends.py checks both the arrays and the stats).

Python's cyclic garbage collector is paused while COCOeval runs: a val2017-sized evaluation allocates millions of
small containers (result dicts, the per image-and-category pair lists), and each of the collections they trigger
walks every object the process holds, a training run's dataset index included. Nothing it allocates needs the
collector to be freed; pausing it took a third of the evaluation's time here (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from faster_coco_eval import COCO as FasterCOCO
from faster_coco_eval import COCOeval_faster
from pycocotools import mask as mask_utils
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
COCO_BACKENDS = ("faster", "pycocotools")
IOU_TYPES = ("bbox", "segm")


def metric_names(iou_type: str) -> tuple[str, ...]:
    """`map`, ... for boxes; `segm_map`, ... for masks."""
    return COCO_METRICS if iou_type == "bbox" else tuple(f"{iou_type}_{name}" for name in COCO_METRICS)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was afterwards); see the module docstring."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_cocoeval(
    coco_gt: COCO,
    results: list[dict[str, Any]],
    *,
    iou_type: str = "bbox",
    backend: str = "faster",
    image_ids: Sequence[int] | None = None,
) -> Any:
    """COCOeval evaluate + accumulate + summarize of non-empty COCO-format `results` (ids of `coco_gt`).

    Returns the evaluation object (pycocotools' or faster-coco-eval's; both have `stats`, `eval`, `params`).
    `image_ids` restricts the evaluated images (default: every image of `coco_gt`, as the official scripts do).
    """
    if backend not in COCO_BACKENDS or iou_type not in IOU_TYPES:
        raise ValueError(f"backend {backend!r} / iou_type {iou_type!r}: use {COCO_BACKENDS} / {IOU_TYPES}")
    with collector_paused():
        copies = [dict(r) for r in results]  # loadRes adds keys (area, id, ...) to each dict
        if backend == "faster":
            # faster-coco-eval needs its own COCO index; this one shares pycocotools' annotation dicts.
            gt = FasterCOCO(coco_gt.dataset)
            evaluation = COCOeval_faster(gt, gt.loadRes(copies), iouType=iou_type, print_function=log.debug)
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
                evaluation = COCOeval(coco_gt, coco_gt.loadRes(copies), iouType=iou_type)
        if image_ids is not None:
            evaluation.params.imgIds = sorted(image_ids)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return evaluation


def evaluate_coco(
    coco_gt: COCO,
    results: list[dict[str, Any]],
    *,
    iou_type: str = "bbox",
    backend: str = "faster",
    image_ids: Sequence[int] | None = None,
) -> tuple[dict[str, float], Any | None]:
    """The 12 COCO stats of `results` by name (`metric_names(iou_type)`), and the evaluation (None if empty)."""
    names = metric_names(iou_type)
    if not results or (image_ids is not None and not len(image_ids)):
        log.warning("COCO %s AP: no detections to evaluate; every metric is 0", iou_type)
        return dict.fromkeys(names, 0.0), None
    evaluation = run_cocoeval(coco_gt, results, iou_type=iou_type, backend=backend, image_ids=image_ids)
    return dict(zip(names, (float(v) for v in evaluation.stats[:12]), strict=True)), evaluation


class COCOEvaluator(Evaluator):
    """COCO box AP of a detector over the images seen by `update` (every image, after a full pass), computed by
    `backend` (faster-coco-eval or pycocotools).

    Labels map back to the file's category ids through `label_to_cat_id`; `image_id_map` maps the dataset's
    image ids (`meta["image_id"]`) to the ids in `coco_gt` when they differ (VOC stems -> the COCO view's ints).
    `results()` gives the dataset's own image ids back: it is what predictions.json holds. The stored results
    carry the COCO ids, so `compute()`, run every epoch, scores them without another copy.
    """

    def __init__(
        self,
        *,
        coco_gt: COCO,
        label_to_cat_id: Mapping[int, int],
        image_id_map: Mapping[Hashable, int] | None = None,
        backend: str = "faster",
        masks: bool = False,
    ):
        if backend not in COCO_BACKENDS:
            raise ValueError(f"COCO backend {backend!r} is not one of {COCO_BACKENDS}")
        self.coco_gt = coco_gt
        self.backend = backend
        self.masks = masks  # instance masks too: mask AP (`segm_map`, ...) beside the box AP
        self.label_to_cat_id = {int(k): int(v) for k, v in label_to_cat_id.items()}
        self.image_id_map = dict(image_id_map) if image_id_map is not None else None
        self.reset()

    def reset(self) -> None:
        self._results: dict[Hashable, list[dict[str, Any]]] = {}
        self._evaluation: Any = None  # the last compute()'s COCOeval (None without detections)

    def _coco_id(self, image_id: Hashable) -> int:
        coco_id = image_id if self.image_id_map is None else self.image_id_map.get(image_id)
        if coco_id not in self.coco_gt.imgs:
            raise DataError(f"image id {image_id!r} is not an image of the COCO ground truth")
        return int(coco_id)

    def add(self, image_id: Hashable, boxes: Any, scores: Any, labels: Any, masks: Any = None) -> None:
        """Record one image's detections (boxes XYXY in original pixels, contiguous 0-based labels; with
        `masks=True` their [N, H, W] binary masks in original pixels, kept as COCO RLE)."""
        if self.masks and masks is None:
            raise ValueError(f"image {image_id!r}: this evaluator scores masks, but the detections have none")
        boxes = _numpy(boxes).astype(np.float64).reshape(-1, 4)
        scores = _numpy(scores).astype(np.float64).reshape(-1)
        labels = _numpy(labels).astype(np.int64).reshape(-1)
        unknown = sorted({int(v) for v in labels} - set(self.label_to_cat_id))
        if unknown:
            raise ValueError(f"labels {unknown} of image {image_id!r} have no category id in label_to_cat_id")
        coco_id = self._coco_id(image_id)
        self._results[image_id] = [
            {
                "image_id": coco_id,
                "category_id": self.label_to_cat_id[int(label)],
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                "score": float(score),
            }
            for (x0, y0, x1, y1), score, label in zip(boxes, scores, labels, strict=True)
        ]
        if self.masks:
            for result, rle in zip(self._results[image_id], encode_masks(masks), strict=True):
                result["segmentation"] = rle
        self._evaluation = None

    def update(self, batch: Batch, predictions: Sequence[dict[str, torch.Tensor]]) -> None:
        for meta, prediction in zip(batch.meta, predictions, strict=True):
            self.add(
                meta["image_id"],
                prediction["boxes"],
                prediction["scores"],
                prediction["labels"],
                prediction.get("masks"),
            )

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, COCOEvaluator):
            raise TypeError(f"cannot merge {type(other).__name__} into COCOEvaluator")
        self._results.update(other._results)
        self._evaluation = None

    def results(self) -> list[dict[str, Any]]:
        """COCO results format (`image_id` as in the dataset, file category ids, [x, y, w, h], score)."""
        ordered = sorted(self._results, key=self._coco_id)
        if self.image_id_map is None:  # the dataset's ids are the COCO ids
            return [result for image_id in ordered for result in self._results[image_id]]
        return [{**r, "image_id": image_id} for image_id in ordered for r in self._results[image_id]]

    def compute(self) -> dict[str, float]:
        coco_ids = {image_id: self._coco_id(image_id) for image_id in self._results}  # once per image
        ordered = sorted(self._results, key=coco_ids.__getitem__)
        detections = [r for image_id in ordered for r in self._results[image_id]]
        image_ids = list(coco_ids.values())
        metrics, self._evaluation = evaluate_coco(
            self.coco_gt, detections, backend=self.backend, image_ids=image_ids
        )
        if self.masks:  # the same results (boxes and masks) as predictions.json, scored as masks
            segm, _ = evaluate_coco(
                self.coco_gt, detections, iou_type="segm", backend=self.backend, image_ids=image_ids
            )
            metrics.update(segm)
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


def encode_masks(masks: Any) -> list[dict[str, Any]]:
    """[N, H, W] binary masks -> COCO RLE dicts ({"size": [H, W], "counts": str}, JSON-ready)."""
    array = _numpy(masks).astype(np.uint8)
    if array.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {list(array.shape)}")
    encoded = mask_utils.encode(np.asfortranarray(array.transpose(1, 2, 0)))
    return [
        {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in encoded
    ]


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
