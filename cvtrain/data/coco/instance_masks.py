"""Instance masks of COCO annotations (`model=mask_rcnn`): one binary mask per kept object, by pycocotools.

Polygons, uncompressed and compressed RLE (crowd regions use them) all decode through `COCO.annToMask`, at the
image size the json gives; the sample checks that size against the decoded image (`samples/detection.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cvtrain.errors import DataError


def instance_masks(coco: Any, image_id: int, ann_ids: Sequence[int], source: str) -> np.ndarray:
    """[N, H, W] uint8 masks of the annotations `ann_ids` of image `image_id` of `coco` (a pycocotools COCO)."""
    image = coco.imgs[image_id]
    masks = np.zeros((len(ann_ids), int(image["height"]), int(image["width"])), dtype=np.uint8)
    for index, ann_id in enumerate(ann_ids):
        ann = coco.anns[ann_id]
        if not ann.get("segmentation"):
            raise DataError(
                f"{source}: annotation id {ann_id} (image {image.get('file_name', image_id)}) has no "
                "'segmentation': instance segmentation (model=mask_rcnn) needs a polygon or RLE mask per object"
            )
        masks[index] = coco.annToMask(ann)
    return masks
