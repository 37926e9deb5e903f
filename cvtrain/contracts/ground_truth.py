"""What a detection dataset provides to be scored: the evaluators follow it, not the dataset's class.

Every detection format (VOC, COCO, ...) exposes its validation ground truth as a COCO API object (COCO AP with
pycocotools), and VOC-style data also its devkit records (`difficult` flags, VOC AP).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class COCOGroundTruth:
    """A split as pycocotools sees it.

    coco:            a `pycocotools.coco.COCO` over the split's images and annotations.
    label_to_cat_id: contiguous training label -> the file's category id (predictions.json uses the file's ids).
    image_id_map:    dataset image id (`meta["image_id"]`) -> id in `coco`, when they differ (VOC stems); else None.
    """

    coco: Any
    label_to_cat_id: Mapping[int, int]
    image_id_map: Mapping[Hashable, int] | None = None


@runtime_checkable
class DetectionGroundTruth(Protocol):
    class_names: list[str]

    def coco_ground_truth(self) -> COCOGroundTruth: ...

    def voc_records(self) -> Sequence[Any] | None:
        """The VOC devkit records (boxes, labels, `difficult`) of every image, or None when the data is not VOC:
        VOC AP (`voc_map`, the headline) is computed only when they exist."""
