"""Per-image box records (the VOC devkit's view of a split) and the COCO-format ground truth built from them.

VOC, and any format whose boxes live in per-image files (YOLO-txt), keep one `VOCRecord` per image: the VOC
evaluator scores them directly and pycocotools scores their COCO view (`records_ground_truth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from cvtrain.contracts.ground_truth import COCOGroundTruth
from cvtrain.data.annotations.coco_api import coco_api_from_dict


@dataclass(frozen=True)
class VOCRecord:
    """One image's annotation, including `difficult` objects (what the VOC evaluator needs)."""

    image_id: str  # unique within the split: the file stem for VOC ("2007_000063")
    path: Path  # the image file
    width: int
    height: int
    boxes: np.ndarray  # float64 [N, 4] XYXY, continuous 0-based pixels
    labels: np.ndarray  # int64 [N], index into the class names
    difficult: np.ndarray  # bool [N]
    # each object's outline in pixels (flat x1, y1, x2, y2, ...), for instance masks (YOLO-seg lines); else None
    polygons: tuple[list[float], ...] | None = None


def records_to_coco(
    records: Sequence[VOCRecord], class_names: Sequence[str], image_ids: dict[str, int]
) -> dict[str, Any]:
    """A COCO-format dict of `records`: category id = 1-based class index, image id = `image_ids[image_id]`.

    `file_name` is the image's file name; records with `polygons` give each annotation its polygon
    `segmentation` (COCO mask AP). Difficult objects are written as `iscrowd: 1`: COCOeval ignores crowd
    regions (a detection matched to one is neither TP nor FP) whereas it ignores a per-annotation `ignore` flag
    (`_prepare` overwrites it with `iscrowd`). Crowd matching uses intersection over the detection's area, so a
    difficult object may absorb more than one detection.
    """
    images, annotations = [], []
    for record in records:
        image_id = image_ids[record.image_id]
        images.append(
            {"id": image_id, "file_name": record.path.name, "width": record.width, "height": record.height}
        )
        outlines = record.polygons or (None,) * len(record.labels)
        for box, label, hard, polygon in zip(
            record.boxes, record.labels, record.difficult, outlines, strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(label) + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": int(hard),
            }
            if polygon is not None:  # as in COCO's own files: the area is the mask's
                rle = mask_utils.frPyObjects([polygon], record.height, record.width)
                annotation.update(segmentation=[polygon], area=float(mask_utils.area(rle).sum()))
            annotations.append(annotation)
    categories = [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def records_ground_truth(
    records: Sequence[VOCRecord], class_names: Sequence[str], image_ids: dict[str, int], source: str
) -> COCOGroundTruth:
    """The `COCOGroundTruth` of `records` (their COCO view, indexed by pycocotools)."""
    return COCOGroundTruth(
        coco=coco_api_from_dict(
            records_to_coco(records, class_names, image_ids), source=f"{source} (COCO view)"
        ),
        label_to_cat_id={label: label + 1 for label in range(len(class_names))},
        image_id_map=image_ids,
    )


class RecordsGroundTruth:
    """`DetectionGroundTruth` of a dataset annotated by per-image `VOCRecord`s (VOC, YOLO-txt): VOC AP on the
    records, COCO AP on their COCO view (built once, on first use). A subclass sets `records` and `class_names`
    and names `ground_truth_source`, the file or folder the COCO view's messages cite."""

    records: list[VOCRecord]
    class_names: list[str]

    @property
    def ground_truth_source(self) -> str:
        raise NotImplementedError

    @cached_property
    def coco_image_ids(self) -> dict[str, int]:
        """The COCO image id (1-based, in record order) of each record's image id."""
        return {r.image_id: i + 1 for i, r in enumerate(self.records)}

    @cached_property
    def _coco_view(self) -> COCOGroundTruth:
        return records_ground_truth(
            self.records, self.class_names, self.coco_image_ids, self.ground_truth_source
        )

    def coco_ground_truth(self) -> COCOGroundTruth:
        return self._coco_view

    def voc_records(self) -> list[VOCRecord]:
        return self.records
