"""The detection evaluator of a dataset, chosen by the ground truth it provides (`DetectionGroundTruth`).

COCO-format data is scored with COCOeval (faster-coco-eval or pycocotools) on its own json (headline `map`); VOC-style data, which also has
devkit records with `difficult` flags, with the devkit's AP (headline `voc_map`) plus COCO AP on its COCO view.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.ground_truth import DetectionGroundTruth
from cvtrain.contracts.plots import PlotData
from cvtrain.errors import ConfigError
from cvtrain.metrics.box_confusion import BoxConfusionEvaluator
from cvtrain.metrics.coco import COCOEvaluator
from cvtrain.metrics.voc import VOCEvaluator


class CombinedEvaluator(Evaluator):
    """Several evaluators over the same predictions; `compute()` merges their (disjoint) metric dicts."""

    def __init__(self, *, evaluators: list[Evaluator]):
        self.evaluators = evaluators

    def reset(self) -> None:
        for evaluator in self.evaluators:
            evaluator.reset()

    def update(self, batch: Batch, predictions: Any) -> None:
        for evaluator in self.evaluators:
            evaluator.update(batch, predictions)

    def merge(self, other: Evaluator) -> None:
        if not isinstance(other, CombinedEvaluator) or len(other.evaluators) != len(self.evaluators):
            raise TypeError(f"cannot merge {type(other).__name__} into this CombinedEvaluator")
        for mine, theirs in zip(self.evaluators, other.evaluators, strict=True):
            mine.merge(theirs)

    def compute(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for evaluator in self.evaluators:
            metrics = evaluator.compute()
            clash = sorted(merged.keys() & metrics.keys())
            if clash:
                raise ValueError(f"two evaluators both report {clash}")
            merged.update(metrics)
        return merged

    def plot_data(self) -> PlotData:
        merged = PlotData()
        for evaluator in self.evaluators:
            merged = merged.merged(evaluator.plot_data())
        return merged

    def report(self) -> Group | None:
        reports = [r for r in (e.report() for e in self.evaluators) if r is not None]
        return Group(*reports) if reports else None


def ground_truth_of(dataset: Any) -> DetectionGroundTruth:
    if not isinstance(dataset, DetectionGroundTruth):
        raise ConfigError(
            f"detection evaluation needs VOC or COCO-format data, got {type(dataset).__name__}: use data=voc, "
            "data=coco or data=shapes"
        )
    return dataset


def detection_headline(truth: DetectionGroundTruth) -> str:
    """The metric that picks best.ckpt on `truth`: VOC AP where the data has devkit records, else COCO AP."""
    return "map" if truth.voc_records() is None else "voc_map"


def coco_evaluator(
    truth: DetectionGroundTruth, backend: str = "faster", masks: bool = False
) -> COCOEvaluator:
    view = truth.coco_ground_truth()
    return COCOEvaluator(
        coco_gt=view.coco,
        label_to_cat_id=view.label_to_cat_id,
        image_id_map=view.image_id_map,
        backend=backend,
        masks=masks,
    )


def detection_evaluator(
    dataset: Any, coco_backend: str = "faster", masks: bool = False, score_threshold: float = 0.5
) -> tuple[Evaluator, str]:
    """The evaluator for `dataset` and its headline metric (what picks best.ckpt); COCO AP by `coco_backend`,
    with mask AP (`segm_map`, ...) when `masks` (Mask R-CNN on data with instance masks). A box confusion matrix of the
    detections scoring >= `score_threshold` comes along for the plots."""
    truth = ground_truth_of(dataset)
    view = truth.coco_ground_truth()
    confusion = BoxConfusionEvaluator(
        coco_gt=view.coco,
        label_to_cat_id=view.label_to_cat_id,
        class_names=truth.class_names,
        score_threshold=score_threshold,
        image_id_map=view.image_id_map,
    )
    records = truth.voc_records()
    if records is None:
        coco = coco_evaluator(truth, coco_backend, masks)
        return CombinedEvaluator(evaluators=[coco, confusion]), detection_headline(truth)
    if masks and not all(r.polygons is not None for r in records):
        raise ConfigError(
            "mask AP needs instance masks: use data=coco, data=shapes or data=yolo_txt with polygon labels"
        )
    voc = VOCEvaluator(records=records, class_names=truth.class_names)
    return CombinedEvaluator(
        evaluators=[voc, coco_evaluator(truth, coco_backend, masks), confusion]
    ), detection_headline(truth)
