"""`data=coco`: any COCO-format detection dataset (an instances json and a folder of images), and its builder.

The box and sample conventions every detection dataset shares live in `detection_samples.py`; `coco_paths` (where
the json and the images of a split are) is shared with `data=coco_seg`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from cvtrain.contracts.batch import BadSample
from cvtrain.contracts.ground_truth import COCOGroundTruth
from cvtrain.data.detection_samples import (
    DetectionTransforms,
    Sample,
    box_problem,
    load_sample,
    report_skipped,
)
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.instance_masks import instance_masks
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)


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
    with `keep_empty` (as negatives). `require_images=False` skips the image-folder check (`image_dir` may then
    be None), for scoring a results file without the pictures.
    """

    def __init__(
        self,
        *,
        ann_file: str | Path,
        image_dir: str | Path | None,
        keep_empty: bool,
        train: bool,
        transforms: DetectionTransforms | None = None,
        require_images: bool = True,
        masks: bool = False,
    ):
        self.ann_file = Path(ann_file).expanduser()
        self.masks = masks  # instance masks in the targets (model=mask_rcnn): cvtrain/data/instance_masks.py
        self.annotation_ids: dict[int, list[int]] = {}  # the annotations behind each image's boxes, in order
        self.image_dir = Path(image_dir).expanduser() if image_dir is not None else None
        self.transforms = transforms
        if require_images and (self.image_dir is None or not self.image_dir.is_dir()):
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
        kept = self.annotation_ids.setdefault(image_id, [])
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
            kept.append(ann["id"])
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample | BadSample:
        image_id = self.image_ids[index]
        boxes, labels = self._targets[image_id]
        path = self.image_dir / self.coco.imgs[image_id]["file_name"]
        masks = None
        if self.masks:
            masks = instance_masks(self.coco, image_id, self.annotation_ids[image_id], str(self.ann_file))
        return load_sample(path, image_id, boxes, labels, self.transforms, masks=masks)

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the json (no decoding), for aspect-ratio grouping."""
        return [self.coco.imgs[i]["width"] / self.coco.imgs[i]["height"] for i in self.image_ids]

    # `DetectionGroundTruth`: scored by pycocotools on the file itself; no VOC records.
    def coco_ground_truth(self) -> COCOGroundTruth:
        return COCOGroundTruth(coco=self.coco, label_to_cat_id=self.label_to_cat_id)

    def voc_records(self) -> None:
        return None


# --------------------------------------------------------------------------------------------------- builder


def coco_paths(cfg: Any, split: str, *, require_images: bool = True) -> tuple[Path, Path | None]:
    """(annotation json, image folder) of `split` ("train" or "val") of a COCO-format `data` config: each the
    explicit `data.<split>_ann` / `data.<split>_images`, else the COCO 2017 name under `data.root`.

    With `require_images=False` (scoring a predictions file) only the json is needed: the image folder is None
    when it is neither given nor under a root."""
    ann, images = getattr(cfg, f"{split}_ann"), getattr(cfg, f"{split}_images")
    needed = [("ann", "FILE (a COCO-format json)", ann)]
    if require_images:
        needed.append(("images", "DIR (its images)", images))
    missing = [f"data.{split}_{kind}={what}" for kind, what, value in needed if value is None]
    if missing and cfg.root is None:
        raise ConfigError(
            f"data={cfg.format} needs data.root=DIR (holding annotations/instances_{split}2017.json and "
            f"{split}2017/), or {' and '.join(missing)}"
        )
    root = Path(cfg.root).expanduser() if cfg.root is not None else None
    ann_file = (
        Path(ann).expanduser() if ann is not None else root / "annotations" / f"instances_{split}2017.json"
    )
    if images is not None:
        return ann_file, Path(images).expanduser()
    return ann_file, root / f"{split}2017" if root is not None else None


def coco_split(
    cfg: Any,
    *,
    train: bool,
    transforms: DetectionTransforms | None = None,
    require_images: bool = True,
    masks: bool = False,
) -> COCODetection:
    ann_file, image_dir = coco_paths(cfg, "train" if train else "val", require_images=require_images)
    return COCODetection(
        ann_file=ann_file,
        image_dir=image_dir,
        keep_empty=cfg.keep_empty,
        train=train,
        transforms=transforms,
        require_images=require_images,
        masks=masks,
    )


def build_coco(cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True) -> DataSplits:
    """`data=coco`: the train and val json + image folders (`coco_paths`); categories must agree."""
    require_task(cfg.format, task, ("detection", "instance_segmentation"))
    splits = detection_splits(
        partial(coco_split, cfg, masks=task == "instance_segmentation"),
        aug=aug,
        need_train=need_train,
        grouping=cfg.aspect_ratio_grouping,
        require_images=require_images,
    )
    if splits.train is not None and splits.train.label_to_cat_id != splits.val.label_to_cat_id:
        raise ConfigError(
            f"the categories of {splits.train.ann_file} and {splits.val.ann_file} differ: train and "
            "validation annotation files must list the same categories"
        )
    return splits
