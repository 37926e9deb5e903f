"""`data=coco`: any COCO-format detection dataset (an instances json and a folder of images).

Also home of the box conventions every detection dataset shares: boxes are XYXY in COCO's continuous 0-based
pixels, annotations whose box is unusable are dropped at load time and reported once (never crashed on), and a
sample is `(tv_tensors.Image, {"boxes": BoundingBoxes, "labels": int64}, meta)` or a `BadSample`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from cvtrain.data.images import BadImageError, BadSample, read_image
from cvtrain.errors import DataError

log = logging.getLogger(__name__)

Target = dict[str, torch.Tensor]
Sample = tuple[tv_tensors.Image, Target, dict[str, Any]]
DetectionTransforms = Callable[[tv_tensors.Image, Target], tuple[tv_tensors.Image, Target]]


# ---------------------------------------------------------------------------------------------- shared helpers


def box_problem(box: Sequence[float], width: float, height: float) -> str | None:
    """Why an XYXY box read from a file is unusable (non-finite, empty, or wholly outside the image), else None.

    Boxes that only stick out of the image are usable: targets are clamped to the image when built.
    """
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        return f"non-finite coordinates {list(box)}"
    if x1 <= x0 or y1 <= y0:
        return f"empty box (XYXY {list(box)}: zero or negative width or height)"
    if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
        return f"box XYXY {list(box)} lies outside the {width}x{height} image"
    return None


def report_skipped(skipped: list[str], source: str | Path) -> None:
    """Warn once, listing every annotation that was dropped at load time."""
    if not skipped:
        return
    shown = "\n  ".join(skipped[:50])
    more = f"\n  ... and {len(skipped) - 50} more" if len(skipped) > 50 else ""
    log.warning(
        "%s: skipped %d annotation(s) with unusable boxes (fix the files to silence this):\n  %s%s",
        source,
        len(skipped),
        shown,
        more,
    )


def make_target(boxes: np.ndarray, labels: np.ndarray, canvas_size: tuple[int, int]) -> Target:
    """Build the training target; boxes sticking out of the image are clamped to it (torchvision's clamp)."""
    bounding = tv_tensors.BoundingBoxes(
        torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=canvas_size
    )
    return {
        "boxes": F.clamp_bounding_boxes(bounding),
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(-1),
    }


def load_sample(
    path: Path,
    image_id: Any,
    boxes: np.ndarray,
    labels: np.ndarray,
    transforms: DetectionTransforms | None,
) -> Sample | BadSample:
    """Read one image and build `(image, target, meta)`; an unreadable image becomes a `BadSample`."""
    try:
        pixels = read_image(path)
    except BadImageError as e:
        return BadSample(path=e.path, reason=e.reason)
    height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
    image = tv_tensors.Image(pixels)
    target = make_target(boxes, labels, (height, width))
    meta = {"image_id": image_id, "path": str(path), "orig_size": (height, width)}
    if transforms is not None:
        image, target = transforms(image, target)
    return image, target, meta


def _silently(fn: Callable[[], Any]) -> Any:
    # pycocotools prints progress lines ("loading annotations...", "creating index...") on stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def load_coco_api(ann_file: str | Path) -> COCO:
    """Load a COCO-format json into a `pycocotools.coco.COCO`, with file errors as `DataError`."""
    path = Path(ann_file).expanduser()
    if not path.is_file():
        raise DataError(
            f"COCO annotation file {path} does not exist: point the annotation path at an instances json"
        )
    try:
        with path.open(encoding="utf-8") as f:
            dataset = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read COCO annotation file {path}: {e}") from e
    return coco_api_from_dict(dataset, source=str(path))


def coco_api_from_dict(dataset: dict[str, Any], *, source: str = "<COCO dict>") -> COCO:
    """Index an in-memory COCO-format dict (e.g. `VOCDetection.to_coco()`) as a `COCO` object.

    Checks the keys pycocotools needs and fills `iscrowd` (0) and `area` (box area) where a file omits them,
    so evaluation never dies on a KeyError deep inside COCOeval.
    """
    if not isinstance(dataset, dict):
        raise DataError(f"{source}: a COCO annotation file is a JSON object, got {type(dataset).__name__}")
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DataError(f"{source}: missing the '{key}' list every COCO annotation file has")
    dataset.setdefault("annotations", [])
    image_ids: set[Any] = set()
    for index, image in enumerate(dataset["images"]):
        missing = [k for k in ("id", "width", "height") if k not in image]
        if missing:
            raise DataError(f"{source}: images[{index}] lacks {missing}")
        if image["id"] in image_ids:
            raise DataError(f"{source}: image id {image['id']} appears twice in 'images'")
        image_ids.add(image["id"])
    for index, category in enumerate(dataset["categories"]):
        if "id" not in category or "name" not in category:
            raise DataError(f"{source}: categories[{index}] needs an 'id' and a 'name'")
    for index, ann in enumerate(dataset["annotations"]):
        missing = [k for k in ("id", "image_id", "category_id", "bbox") if k not in ann]
        if missing:
            raise DataError(f"{source}: annotations[{index}] lacks {missing}")
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            bbox = ann["bbox"]
            ann["area"] = float(bbox[2]) * float(bbox[3]) if len(bbox) == 4 else 0.0
    coco = COCO()
    coco.dataset = dataset
    _silently(coco.createIndex)
    return coco


# --------------------------------------------------------------------------------------------------- dataset


class COCODetection:
    """A COCO-format detection dataset read with pycocotools.

    Category ids of the file (1..90 with gaps for COCO) map, in sorted order, to contiguous labels 0..C-1
    (`cat_id_to_label`, `label_to_cat_id`). `iscrowd` annotations never become targets (COCOeval handles them as
    crowd regions). Images with no usable target are kept for evaluation (`train=False`) and, in training, only
    with `keep_empty` (as negatives). `require_images=False` skips the image-folder check, for scoring a
    results file without the pictures.
    """

    def __init__(
        self,
        *,
        ann_file: str | Path,
        image_dir: str | Path,
        keep_empty: bool,
        train: bool,
        transforms: DetectionTransforms | None = None,
        require_images: bool = True,
    ):
        self.ann_file = Path(ann_file).expanduser()
        self.image_dir = Path(image_dir).expanduser()
        self.transforms = transforms
        if require_images and not self.image_dir.is_dir():
            raise DataError(
                f"COCO image folder {self.image_dir} does not exist: it should hold the files named by "
                f"'file_name' in {self.ann_file}"
            )
        self.coco = load_coco_api(self.ann_file)
        cat_ids = sorted(self.coco.cats)
        self.cat_id_to_label: dict[int, int] = {cat_id: label for label, cat_id in enumerate(cat_ids)}
        self.label_to_cat_id: dict[int, int] = dict(enumerate(cat_ids))
        self.class_names: list[str] = [str(self.coco.cats[cat_id]["name"]) for cat_id in cat_ids]
        self.skipped_annotations: list[str] = []
        self._targets: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.image_ids: list[int] = []
        for image_id in sorted(self.coco.imgs):
            boxes, labels = self._image_targets(image_id)
            self._targets[image_id] = (boxes, labels)
            if len(labels) or not train or keep_empty:
                self.image_ids.append(image_id)
        report_skipped(self.skipped_annotations, self.ann_file)
        dropped = len(self.coco.imgs) - len(self.image_ids)
        if dropped:
            log.info(
                "%s: %d image(s) without a usable annotation left out of training", self.ann_file, dropped
            )

    def _image_targets(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        image = self.coco.imgs[image_id]
        boxes, labels = [], []
        for index, ann in enumerate(self.coco.imgToAnns.get(image_id, [])):
            if ann.get("iscrowd", 0):
                continue
            where = f"{self.ann_file}: annotation id {ann['id']} (image {image.get('file_name', image_id)}, #{index})"
            if ann["category_id"] not in self.cat_id_to_label:
                raise DataError(
                    f"{where} has category_id {ann['category_id']}, which 'categories' does not list"
                )
            bbox = ann["bbox"]
            if not isinstance(bbox, list | tuple) or len(bbox) != 4:
                self.skipped_annotations.append(f"{where}: bbox {bbox!r} is not [x, y, w, h]")
                continue
            try:
                x, y, w, h = (float(v) for v in bbox)
            except (TypeError, ValueError):
                self.skipped_annotations.append(f"{where}: bbox {bbox!r} is not numeric")
                continue
            box = (x, y, x + w, y + h)
            problem = box_problem(box, image["width"], image["height"])
            if problem:
                self.skipped_annotations.append(f"{where}: {problem}")
                continue
            boxes.append(box)
            labels.append(self.cat_id_to_label[ann["category_id"]])
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample | BadSample:
        image_id = self.image_ids[index]
        boxes, labels = self._targets[image_id]
        path = self.image_dir / self.coco.imgs[image_id]["file_name"]
        return load_sample(path, image_id, boxes, labels, self.transforms)

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the json (no decoding), for aspect-ratio grouping."""
        return [self.coco.imgs[i]["width"] / self.coco.imgs[i]["height"] for i in self.image_ids]
