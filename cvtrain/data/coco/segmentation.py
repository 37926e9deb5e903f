"""`data=coco_seg`: semantic segmentation label maps rasterised from COCO instance annotations, and its builder.

Polygons, uncompressed RLE and compressed RLE are rasterised with `pycocotools.mask`. The label map of an image:

1. starts as background (0);
2. paints each non-crowd annotation of a kept category in the order the annotation file lists them, so where
   instances overlap the one listed *later* wins;
3. then marks every crowd region (`iscrowd=1`) of a kept category 255 (ignored: its pixels are not labelled
   reliably), on top of everything.

`classes="voc"` keeps the 20 Pascal VOC categories (found by COCO name, labelled 1..20 in VOC's order, with VOC's
class names) and drops every other annotation, which therefore stays background, as torchvision's segmentation
reference does. `classes="all"` keeps every category, labelled 1..K in increasing category-id order.

Rasterising costs more than decoding a PNG, so with `cache_dir` each label map is written once as an index PNG
under a folder keyed by the annotation file (path, size, mtime) and `classes`; later epochs read it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog, image_path
from cvtrain.data.annotations.class_names import VOC_SEG_CLASSES
from cvtrain.data.annotations.coco_api import index_coco, read_coco_json
from cvtrain.data.annotations.coco_checks import Usable, check_coco, no_objects
from cvtrain.data.coco.detection import coco_paths
from cvtrain.data.decoding.palette import IGNORE_INDEX, read_index_png, write_index_png
from cvtrain.data.samples.segmentation import JointTransform, SegmentationSample, load_segmentation_sample
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.data.transforms.segmentation import segmentation_transforms
from cvtrain.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# COCO's names for the VOC categories, in VOC's label order (aeroplane=1 ... tvmonitor=20).
COCO_NAMES_OF_VOC_CLASSES = (
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining table", "dog",
    "horse", "motorcycle", "person", "potted plant", "sheep", "couch", "train", "tv",
)  # fmt: skip
CACHE_VERSION = 2  # bump when rasterisation changes, so stale cached masks are not reused


class COCOSegmentation(Dataset):
    """COCO images with rasterised label maps: `(image, mask, meta)` samples (see `load_segmentation_sample`).

    `drop_empty=True` leaves out images without any non-crowd annotation of a kept category (useful for
    training on `classes="voc"`, where most COCO images would be all background).
    """

    def __init__(
        self,
        *,
        ann_file: str | Path,
        image_dir: str | Path,
        classes: Literal["voc", "all"] = "voc",
        cache_dir: str | Path | None = None,
        transforms: JointTransform | None = None,
        drop_empty: bool = False,
        checks: AnnotationLog | None = None,
    ) -> None:
        self.ann_file = Path(ann_file).expanduser()
        self.image_dir = Path(image_dir).expanduser()
        self.transforms = transforms
        if classes not in ("voc", "all"):
            raise ConfigError(f"data.classes must be 'voc' or 'all', got {classes!r}")
        if not self.image_dir.is_dir():
            raise DataError(f"COCO image folder {self.image_dir} does not exist; set data.root / image_dir")
        self.checks = checks if checks is not None else AnnotationLog()
        since = len(self.checks.problems)
        dataset = read_coco_json(self.ann_file)
        usable = check_coco(dataset, source=self.ann_file, checks=self.checks, reads=("segmentation",))
        self.coco = index_coco(dataset, usable)  # only the usable annotations are rasterised
        self.image_paths = {
            coco_id: image_path(
                self.checks,
                self.image_dir,
                info["file_name"],
                file=self.ann_file,
                where=f"image id {coco_id}",
            )
            for coco_id, info in self.coco.imgs.items()
        }
        self.checks.report(self.ann_file, since)
        self.label_of_category, self.class_names = _class_map(self.coco, classes, self.ann_file)
        self.image_ids = self._select_images(drop_empty, dataset, usable, since)
        self.cache_folder = None
        if cache_dir is not None:
            self.cache_folder = Path(cache_dir).expanduser() / _cache_name(self.ann_file, classes)
            self.cache_folder.mkdir(parents=True, exist_ok=True)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> SegmentationSample | BadSample:
        coco_id = self.image_ids[index]
        file_name = self.coco.imgs[coco_id]["file_name"]
        return load_segmentation_sample(
            image_path=self.image_paths[coco_id],
            image_id=Path(file_name).stem,
            read_mask=partial(self.label_map, coco_id),
            mask_source=f"{self.ann_file} (image id {coco_id})",
            num_classes=self.num_classes,
            transforms=self.transforms,
        )

    def label_map(self, coco_id: Any) -> np.ndarray:
        """The uint8 label map [H, W] of one image: from the cache if there, else rasterised (and cached)."""
        cached = self.cache_folder / f"{coco_id}.png" if self.cache_folder is not None else None
        if cached is not None and cached.is_file():
            try:
                return read_index_png(cached)
            except DataError as e:  # e.g. a file truncated by a full disk: rebuild it
                logger.warning("rebuilding cached mask: %s", e)
        info = self.coco.imgs[coco_id]
        label_map = rasterize(
            self.coco.imgToAnns.get(coco_id, []),
            height=info["height"],
            width=info["width"],
            label_of_category=self.label_of_category,
            source=str(self.ann_file),
        )
        if cached is not None:
            try:
                write_index_png(cached, label_map)  # atomic, so concurrent workers are safe
            except OSError as e:
                logger.warning("cannot cache mask %s (%s); continuing without the cache", cached, e)
        return label_map

    def _select_images(
        self, drop_empty: bool, dataset: dict[str, Any], usable: dict[Any, list[Usable]], since: int
    ) -> list[Any]:
        """Every image, or with `drop_empty` those holding a kept class; a `DataError` when no image holds one."""
        ids = sorted(self.coco.imgs)
        holding = [
            i
            for i in ids
            if any(
                not a["iscrowd"] and a["category_id"] in self.label_of_category
                for a in self.coco.imgToAnns.get(i, [])
            )
        ]
        if not holding:
            no_objects(
                self.checks,
                self.ann_file,
                dataset,
                where="the split",
                objects=f"object of the {self.num_classes - 1} kept classes",
                usable=usable,
                since=since,
                fix="point the split at a file with objects, or use data.classes=all",
            )
        return holding if drop_empty else ids


def annotation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One annotation's `segmentation` (polygons, uncompressed or compressed RLE) → bool mask [H, W]."""
    if isinstance(segmentation, list):
        # Polygons of fewer than 3 points never get here (`coco_checks.segmentation_problem`): pycocotools would
        # read a 4-number list as a box.
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict):
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(f"RLE size {segmentation['size']} differs from the image's {[height, width]}")
        if isinstance(segmentation["counts"], list):  # uncompressed RLE (typical for crowds)
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation  # compressed RLE: decode takes it as is
    else:
        raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")
    return mask_utils.decode(rle).astype(bool)


def rasterize(
    annotations: Sequence[dict[str, Any]],
    *,
    height: int,
    width: int,
    label_of_category: dict[int, int],
    source: str = "annotations",
) -> np.ndarray:
    """Paint the annotations of one image into a uint8 label map (order and crowd rule: module docstring)."""
    label_map = np.zeros((height, width), dtype=np.uint8)
    crowd = np.zeros((height, width), dtype=bool)
    for ann in annotations:
        label = label_of_category.get(ann["category_id"])
        if label is None:
            continue
        try:
            mask = annotation_mask(ann["segmentation"], height, width)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{source}: annotation id {ann.get('id')} (image id {ann.get('image_id')}) has an unreadable "
                f"segmentation ({e}); fix or remove that annotation"
            ) from e
        if ann.get("iscrowd", 0):
            crowd |= mask
        else:
            label_map[mask] = label
    label_map[crowd] = IGNORE_INDEX
    return label_map


def _class_map(coco: COCO, classes: str, ann_file: Path) -> tuple[dict[int, int], list[str]]:
    """(category id → training label, class names with background first)."""
    if classes == "voc":
        id_of_name = {c["name"]: cat_id for cat_id, c in coco.cats.items()}
        missing = [n for n in COCO_NAMES_OF_VOC_CLASSES if n not in id_of_name]
        if len(missing) == len(COCO_NAMES_OF_VOC_CLASSES):
            raise DataError(f"{ann_file} has none of the VOC categories (by COCO name); use data.classes=all")
        if missing:
            logger.warning("%s lacks VOC categories %s; those classes never occur", ann_file, missing)
        label_of_category = {
            id_of_name[name]: label
            for label, name in enumerate(COCO_NAMES_OF_VOC_CLASSES, start=1)
            if name in id_of_name
        }
        return label_of_category, list(VOC_SEG_CLASSES)
    category_ids = sorted(coco.cats)
    if len(category_ids) >= IGNORE_INDEX:
        raise DataError(f"{ann_file} has {len(category_ids)} categories; index PNG masks hold at most 254")
    label_of_category = {cat_id: label for label, cat_id in enumerate(category_ids, start=1)}
    return label_of_category, ["background", *(coco.cats[c]["name"] for c in category_ids)]


def _cache_name(ann_file: Path, classes: str) -> str:
    stat = ann_file.stat()
    blob = json.dumps(
        {
            "ann_file": str(ann_file.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "classes": classes,
            "version": CACHE_VERSION,
        },
        sort_keys=True,
    )
    return f"coco_seg-{ann_file.stem}-{classes}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def coco_seg_split(
    cfg: Any, *, train: bool, transforms: JointTransform, checks: AnnotationLog
) -> COCOSegmentation:
    ann_file, image_dir = coco_paths(cfg, "train" if train else "val")
    return COCOSegmentation(
        checks=checks,
        ann_file=ann_file,
        image_dir=image_dir,
        classes=cfg.classes.value,
        cache_dir=cfg.cache_dir,
        transforms=transforms,
        drop_empty=train and cfg.drop_empty,  # evaluation always keeps every image
    )


def build_coco_seg(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    """`data=coco_seg`: label maps rasterised from the instance annotations (cached under `cache_dir`).

    Training gets `segmentation_transforms(aug, train=True)`; evaluation keeps every image's full resolution."""
    require_task(cfg.format, task, ("segmentation",))
    checks = AnnotationLog(cfg.on_bad_annotation)
    train = None
    if need_train:
        train = coco_seg_split(
            cfg, train=True, transforms=segmentation_transforms(aug, train=True), checks=checks
        )
    val = coco_seg_split(
        cfg, train=False, transforms=segmentation_transforms(aug, train=False), checks=checks
    )
    if train is not None and train.class_names != val.class_names:
        raise ConfigError(
            f"the categories of {train.ann_file} and {val.ann_file} differ: with data.classes=all, train and "
            "validation annotation files must list the same categories"
        )
    return DataSplits(train=train, val=val, class_names=list(val.class_names), problems=checks.problems)
