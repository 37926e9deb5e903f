"""`data=yolo_txt data.root=DIR`: detection data in the Ultralytics YOLO-txt layout (see `labels.py`).

Normalised boxes need each image's size as displayed: it is read from the image header (no decoding; EXIF
orientation applied) when the split is built; an image whose header cannot be read stays in the split as a
`BadSample` (the run stops naming it, or skips it with `data.on_bad_image=skip`) and out of the ground truth. The ground truth is the VOC one (per-image records,
no `difficult` objects), so a detector is scored with VOC AP (`voc_map`, the headline) and COCO AP.

With `masks` (`model=mask_rcnn`) every object is a polygon line: each sample carries its instance masks, drawn
from the polygons at the image's size by pycocotools, and the COCO view holds the polygons (COCO mask AP).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.annotations.records import RecordsGroundTruth, VOCRecord
from cvtrain.data.decoding.images import displayed_size
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.samples.detection import DetectionTransforms, Sample, load_sample
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.data.yolo_txt.labels import (
    YoloLayout,
    label_path,
    parse_labels,
    read_data_yaml,
    split_images,
)
from cvtrain.errors import DataError

log = logging.getLogger(__name__)


class YoloTxtDetection(RecordsGroundTruth):
    """One split ("train" or "val") of a YOLO-txt dataset.

    `samples` holds a `VOCRecord` per image (boxes in pixels, clipped to the image) or a `BadSample` for an image
    whose header cannot be read. Label problems go to `checks` (policy `data.on_bad_annotation`; by default every
    unusable line is an error naming the file and line).
    """

    def __init__(
        self,
        *,
        layout: YoloLayout,
        split: str,
        transforms: DetectionTransforms | None = None,
        checks: AnnotationLog | None = None,
        masks: bool = False,
    ):
        self.layout = layout
        self.masks = masks
        self.split = split
        self.transforms = transforms
        self.class_names = list(layout.class_names)
        self.checks = checks if checks is not None else AnnotationLog()
        since = len(self.checks.problems)
        images = split_images(layout, split)
        if not images:
            raise DataError(f"{layout.yaml_file}: `{split}` ({layout.sources[split]}) holds no image files")
        if layout.skip_unlabelled:
            images = self._labelled(images)
        self.samples: list[VOCRecord | BadSample] = [self._read(image) for image in images]
        if not any(label_path(image).is_file() for image in images):
            # Legal (all backgrounds) but nearly always a layout mistake: say where the labels were looked for.
            log.warning(
                "%s: no label file for any of the %d %s images (looked for e.g. %s): every image is a background",
                layout.yaml_file,
                len(images),
                split,
                label_path(images[0]),
            )
        self.records = [s for s in self.samples if isinstance(s, VOCRecord)]
        seen: dict[str, Path] = {}
        for record in self.records:
            if record.image_id in seen:
                raise DataError(
                    f"{record.path} and {seen[record.image_id]} are the same image id {record.image_id}"
                )
            seen[record.image_id] = record.path
        self.checks.report(f"{layout.yaml_file} ({split})", since)

    def _labelled(self, images: list[Path]) -> list[Path]:
        """The images with a label file: the others are unlabelled, not backgrounds (`skip_if_label_file_missing`)."""
        labelled = [image for image in images if label_path(image).is_file()]
        if not labelled:
            raise DataError(
                f"{self.layout.yaml_file}: none of the {len(images)} {self.split} images has a label file (looked "
                f"for e.g. {label_path(images[0])}) and `skip_if_label_file_missing: true` leaves them all out"
            )
        if len(labelled) < len(images):
            log.info(
                "%s: %d of the %d %s images have no label file: left out (skip_if_label_file_missing: true)",
                self.layout.yaml_file,
                len(images) - len(labelled),
                len(images),
                self.split,
            )
        return labelled

    def _read(self, image: Path) -> VOCRecord | BadSample:
        try:
            width, height = displayed_size(image)  # normalised coordinates are of the picture as displayed
        except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for a missing or unreadable file
            return BadSample(path=str(image), reason=f"not a readable image ({e})")
        labels = parse_labels(
            label_path(image), self.layout.labels, width, height, self.checks, masks=self.masks
        )
        boxes, classes = labels.arrays(width, height)
        return VOCRecord(
            image_id=self._image_id(image),
            path=image,
            width=width,
            height=height,
            boxes=boxes,
            labels=classes,
            difficult=np.zeros(len(classes), dtype=bool),
            polygons=tuple(labels.polygons) if self.masks else None,  # every one a polygon (`parse_labels`)
        )

    def _image_id(self, image: Path) -> str:
        """The image's path below the dataset root, without extension (stems may repeat in sub-folders)."""
        try:
            return image.relative_to(self.layout.base).with_suffix("").as_posix()
        except ValueError:
            return image.with_suffix("").as_posix()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample | BadSample:
        sample = self.samples[index]
        if isinstance(sample, BadSample):
            return sample
        size = (sample.height, sample.width)
        masks = polygon_masks(sample.polygons, size) if sample.polygons is not None else None
        return load_sample(
            sample.path, sample.image_id, sample.boxes, sample.labels, self.transforms, size=size, masks=masks
        )

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the headers read at construction, for aspect-ratio grouping."""
        return [s.width / s.height if isinstance(s, VOCRecord) else 1.0 for s in self.samples]

    @property
    def ground_truth_source(self) -> str:
        return str(self.layout.yaml_file)


def polygon_masks(polygons: tuple[list[float], ...], size: tuple[int, int]) -> np.ndarray:
    """[N, H, W] uint8 instance masks of pixel polygons (flat x1, y1, ...) on a `size` (height, width) image."""
    height, width = size
    if not polygons:
        return np.zeros((0, height, width), dtype=np.uint8)
    rles = mask_utils.frPyObjects([list(p) for p in polygons], height, width)
    return np.ascontiguousarray(mask_utils.decode(rles).transpose(2, 0, 1))


def yolo_txt_split(
    cfg: Any,
    *,
    train: bool,
    transforms: DetectionTransforms | None = None,
    require_images: bool = True,
    checks: AnnotationLog | None = None,
    masks: bool = False,
) -> YoloTxtDetection:
    """`train` or `val` of `data.root`'s data.yaml. The images are needed even to score a predictions file
    (`require_images=False`): the labels are normalised by their sizes."""
    layout = read_data_yaml(Path(cfg.root).expanduser() / cfg.yaml)
    return YoloTxtDetection(
        layout=layout, split="train" if train else "val", transforms=transforms, checks=checks, masks=masks
    )


def build_yolo_txt(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    """`data=yolo_txt`: the `train` and `val` splits of `data.root`/data.yaml (with instance masks from the
    polygon lines for `model=mask_rcnn`)."""
    require_task(cfg.format, task, ("detection", "instance_segmentation"))
    checks = AnnotationLog(cfg.on_bad_annotation)
    splits = detection_splits(
        partial(yolo_txt_split, cfg, checks=checks, masks=task == "instance_segmentation"),
        aug=aug,
        need_train=need_train,
        grouping=cfg.aspect_ratio_grouping,
        require_images=require_images,
    )
    splits.problems = checks.problems
    return splits
