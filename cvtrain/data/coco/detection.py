"""`data=coco`: any COCO-format detection dataset (an instances json and a folder of images), and its builder.

The box and sample conventions every detection dataset shares live in `samples/detection.py`; `coco_paths` (where
the json and the images of a split are) is shared with `data=coco_seg`.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.contracts.batch import BadSample
from cvtrain.contracts.ground_truth import COCOGroundTruth
from cvtrain.data.annotations.checks import AnnotationLog, image_path
from cvtrain.data.annotations.coco_api import index_coco, read_coco_json
from cvtrain.data.annotations.coco_checks import check_coco, no_objects
from cvtrain.data.coco.instance_masks import instance_masks
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.samples.detection import DetectionTransforms, Sample, load_sample
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- dataset


class COCODetection:
    """A COCO-format detection dataset read with pycocotools.

    Category ids of the file (1..90 with gaps for COCO) map, in sorted order, to contiguous labels 0..C-1
    (`cat_id_to_label`, `label_to_cat_id`). The file is checked by `check_coco` under `checks` (its policy
    `data.on_bad_annotation`; by default every defect is an error); skipped annotations are neither trained on
    nor in the evaluation ground truth `coco`. `iscrowd` annotations never become targets (COCOeval handles them
    as crowd regions). Images with no usable target are kept for evaluation (`train=False`) and, in training,
    only with `keep_empty` (as negatives); a split without a single usable object is a `DataError`.
    `require_images=False` skips the image-folder check (`image_dir` may then be None), for scoring a results
    file without the pictures.
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
        checks: AnnotationLog | None = None,
        masks: bool = False,
    ):
        self.ann_file = Path(ann_file).expanduser()
        self.masks = (
            masks  # instance masks in the targets (model=mask_rcnn): cvtrain/data/coco/instance_masks.py
        )
        self.annotation_ids: dict[int, list[int]] = {}  # the annotations behind each image's boxes, in order
        self.image_dir = Path(image_dir).expanduser() if image_dir is not None else None
        self.transforms = transforms
        self.checks = checks if checks is not None else AnnotationLog()
        if require_images and (self.image_dir is None or not self.image_dir.is_dir()):
            raise DataError(
                f"COCO image folder {self.image_dir} does not exist: it should hold the files named by "
                f"'file_name' in {self.ann_file}"
            )
        since = len(self.checks.problems)
        dataset = read_coco_json(self.ann_file)
        reads = ("bbox", "segmentation") if masks else ("bbox",)
        usable = check_coco(dataset, source=self.ann_file, checks=self.checks, reads=reads)
        self.coco = index_coco(dataset, usable)
        self.image_paths = {
            image_id: image_path(
                self.checks,
                self.image_dir or ".",
                image["file_name"],
                file=self.ann_file,
                where=f"image id {image_id}",
            )
            for image_id, image in self.coco.imgs.items()
        }
        cat_ids = sorted(self.coco.cats)
        self.cat_id_to_label: dict[int, int] = {cat_id: label for label, cat_id in enumerate(cat_ids)}
        self.label_to_cat_id: dict[int, int] = dict(enumerate(cat_ids))
        self.class_names: list[str] = [str(self.coco.cats[cat_id]["name"]) for cat_id in cat_ids]
        self._targets: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.image_ids: list[int] = []
        for image_id in sorted(self.coco.imgs):
            found = [u for u in usable[image_id] if not u.ann["iscrowd"]]
            boxes = np.asarray([u.box for u in found], dtype=np.float32).reshape(-1, 4)
            labels = np.asarray([self.cat_id_to_label[u.ann["category_id"]] for u in found], dtype=np.int64)
            self._targets[image_id] = (boxes, labels)
            self.annotation_ids[image_id] = [u.ann["id"] for u in found]
            if len(labels) or not train or keep_empty:
                self.image_ids.append(image_id)
        self.checks.report(self.ann_file, since)
        if not any(len(labels) for _, labels in self._targets.values()):
            no_objects(
                self.checks,
                self.ann_file,
                dataset,
                where=f"the {'training' if train else 'validation'} split",
                objects="object",
                usable=usable,
                since=since,
                fix="point the split at a file with objects (data.train_ann / data.val_ann / data.root)",
            )
        dropped = len(self.coco.imgs) - len(self.image_ids)
        if dropped:
            log.info(
                "%s: %d image(s) without a usable annotation left out of training", self.ann_file, dropped
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> Sample | BadSample:
        image_id = self.image_ids[index]
        boxes, labels = self._targets[image_id]
        path = self.image_paths[image_id]
        masks = None
        if self.masks:
            masks = instance_masks(self.coco, image_id, self.annotation_ids[image_id], str(self.ann_file))
        info = self.coco.imgs[image_id]
        size = (info["height"], info["width"])
        return load_sample(path, image_id, boxes, labels, self.transforms, size=size, masks=masks)

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
    checks: AnnotationLog | None = None,
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
        checks=checks,
        masks=masks,
    )


def build_coco(cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True) -> DataSplits:
    """`data=coco`: the train and val json + image folders (`coco_paths`); categories must agree."""
    require_task(cfg.format, task, ("detection", "instance_segmentation"))
    checks = AnnotationLog(cfg.on_bad_annotation)
    splits = detection_splits(
        partial(coco_split, cfg, checks=checks, masks=task == "instance_segmentation"),
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
    splits.problems = checks.problems
    return splits
