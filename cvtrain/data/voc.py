"""`data=voc`: Pascal VOC detection (a `VOCdevkit` folder with VOC2007/ and/or VOC2012/), and its builder.

XML boxes are 1-based pixel corners; cvtrain uses COCO's continuous 0-based pixels, so the XML's
(xmin, ymin, xmax, ymax) is the box (xmin - 1, ymin - 1, xmax, ymax). Coordinates are parsed as floats (real
files contain fractional ones). Every XML is parsed once, at construction.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvtrain.contracts.batch import BadSample
from cvtrain.contracts.ground_truth import COCOGroundTruth
from cvtrain.data.detection_records import VOCRecord, records_ground_truth, records_to_coco
from cvtrain.data.detection_samples import (
    DetectionTransforms,
    Sample,
    box_problem,
    load_sample,
    report_skipped,
)
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.errors import DataError

log = logging.getLogger(__name__)

# The 20 Pascal VOC classes in the devkit's order (segmentation prepends "background": `voc_seg.VOC_SEG_CLASSES`).
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_SPLITS = ("train", "val", "trainval", "test")


class VOCDetection:
    """Pascal VOC detection; several years concatenate (e.g. `years=[2007, 2012], split="trainval"`).

    `difficult` objects stay out of the training targets unless `use_difficult`, but are always in `records`
    (the evaluator ignores them). `require_images=False` skips the JPEGImages check, for scoring a results file
    without the pictures. `class_names` defaults to the 20 VOC classes in the standard order (the synthetic
    shapes data passes its own); an object of any other class is a `DataError`.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        years: Sequence[int | str],
        split: str,
        use_difficult: bool = False,
        transforms: DetectionTransforms | None = None,
        require_images: bool = True,
        class_names: Sequence[str] = VOC_CLASSES,
    ):
        self.root = Path(root).expanduser()
        self.split = split
        self.use_difficult = use_difficult
        self.transforms = transforms
        self.class_names = list(class_names)
        self._class_index = {name: i for i, name in enumerate(self.class_names)}
        self.skipped_annotations: list[str] = []
        if not self.root.is_dir():
            raise DataError(
                f"VOC root {self.root} does not exist: it should be a VOCdevkit folder containing VOC2007/ "
                "and/or VOC2012/"
            )
        if not years:
            raise DataError("data.years is empty: list the VOC years to read, e.g. [2007, 2012]")
        self.records: list[VOCRecord] = []
        for year in years:
            self.records.extend(self._read_year(int(year), require_images))
        seen: dict[str, Path] = {}
        for record in self.records:
            if record.image_id in seen:
                raise DataError(
                    f"image id {record.image_id} appears twice ({seen[record.image_id]} and {record.path}): "
                    "VOC image ids must be unique across the years read together"
                )
            seen[record.image_id] = record.path
        report_skipped(self.skipped_annotations, self.root)
        self.coco_image_ids: dict[str, int] = {r.image_id: i + 1 for i, r in enumerate(self.records)}
        self._coco_view: COCOGroundTruth | None = None

    def _read_year(self, year: int, require_images: bool) -> list[VOCRecord]:
        year_dir = self.root / f"VOC{year}"
        expected = "Annotations/*.xml, JPEGImages/*.jpg and ImageSets/Main/{train,val,trainval,test}.txt"
        if not year_dir.is_dir():
            raise DataError(f"VOC folder {year_dir} does not exist: expected {expected} inside it")
        folders = ["Annotations"] + (["JPEGImages"] if require_images else [])
        for folder in folders:
            if not (year_dir / folder).is_dir():
                raise DataError(
                    f"VOC folder {year_dir / folder} does not exist: expected {expected} in {year_dir}"
                )
        split_file = year_dir / "ImageSets" / "Main" / f"{self.split}.txt"
        if not split_file.is_file():
            present = sorted(p.stem for p in split_file.parent.glob("*.txt") if "_" not in p.stem)
            raise DataError(
                f"VOC split file {split_file} does not exist (split '{self.split}'); splits found there: "
                f"{present or 'none'}. Expected one image id per line."
            )
        stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        return [self._parse(year_dir, stem) for stem in stems]

    def _parse(self, year_dir: Path, stem: str) -> VOCRecord:
        xml_path = year_dir / "Annotations" / f"{stem}.xml"
        image_path = year_dir / "JPEGImages" / f"{stem}.jpg"
        try:
            root = ET.parse(xml_path).getroot()
        except FileNotFoundError as e:
            raise DataError(
                f"annotation {xml_path} is missing (listed in the split file of {year_dir})"
            ) from e
        except ET.ParseError as e:
            raise DataError(f"annotation {xml_path} is not valid XML: {e}") from e
        width, height = _image_size(root, xml_path, image_path)
        boxes, labels, difficult = [], [], []
        for index, obj in enumerate(root.findall("object")):
            name = (obj.findtext("name") or "").strip()
            if name not in self._class_index:
                raise DataError(
                    f"{xml_path}: object {index} has class name {name!r}, which is not one of the "
                    f"dataset's classes ({', '.join(self.class_names)})"
                )
            where = f"{xml_path} object {index} ({name})"
            bndbox = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (
                    float(bndbox.findtext(k, "")) for k in ("xmin", "ymin", "xmax", "ymax")
                )
            except (AttributeError, ValueError):
                self.skipped_annotations.append(f"{where}: missing or non-numeric <bndbox> coordinates")
                continue
            box = (xmin - 1.0, ymin - 1.0, xmax, ymax)
            problem = box_problem(box, width, height)
            if problem:
                self.skipped_annotations.append(f"{where}: {problem}")
                continue
            boxes.append(box)
            labels.append(self._class_index[name])
            difficult.append(_flag(obj.findtext("difficult")))
        return VOCRecord(
            image_id=stem,
            path=image_path,
            width=width,
            height=height,
            boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            labels=np.asarray(labels, dtype=np.int64),
            difficult=np.asarray(difficult, dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample | BadSample:
        record = self.records[index]
        keep = slice(None) if self.use_difficult else ~record.difficult
        return load_sample(
            record.path, record.image_id, record.boxes[keep], record.labels[keep], self.transforms
        )

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the XML `<size>` (no decoding), for aspect-ratio grouping."""
        return [r.width / r.height for r in self.records]

    def to_coco(self) -> dict[str, Any]:
        """A COCO-format ground-truth view of these annotations, for computing COCO AP on VOC data (category ids
        are the 1-based class index, image ids `coco_image_ids[stem]`, difficult objects crowds: see
        `records_to_coco`)."""
        return records_to_coco(self.records, self.class_names, self.coco_image_ids)

    # `DetectionGroundTruth`: VOC AP on the records, COCO AP on the COCO view (built once).
    def coco_ground_truth(self) -> COCOGroundTruth:
        if self._coco_view is None:
            self._coco_view = records_ground_truth(
                self.records, self.class_names, self.coco_image_ids, str(self.root)
            )
        return self._coco_view

    def voc_records(self) -> list[VOCRecord]:
        return self.records


def _flag(text: str | None) -> bool:
    try:
        return bool(int(float(text))) if text and text.strip() else False
    except ValueError:
        return False


def _image_size(root: ET.Element, xml_path: Path, image_path: Path) -> tuple[int, int]:
    """(width, height) from `<size>`; from the image header (no decoding) when the XML lacks it."""
    try:
        width = int(float(root.findtext("size/width", "")))
        height = int(float(root.findtext("size/height", "")))
        if width > 0 and height > 0:
            return width, height
    except ValueError:
        pass
    try:
        with Image.open(image_path) as im:
            return im.size
    except OSError as e:
        raise DataError(
            f"{xml_path} has no usable <size> and its image {image_path} cannot be read ({e})"
        ) from e


def voc_split(
    cfg: Any, *, train: bool, transforms: DetectionTransforms | None = None, require_images: bool = True
) -> VOCDetection:
    """`years` x `train_split` for training, `val_years` (None: `years`) x `val_split` for evaluation."""
    years = cfg.years if train or cfg.val_years is None else cfg.val_years
    return VOCDetection(
        root=cfg.root,
        years=list(years),
        split=cfg.train_split if train else cfg.val_split,
        use_difficult=cfg.use_difficult,
        transforms=transforms,
        require_images=require_images,
    )


def build_voc(cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True) -> DataSplits:
    """`data=voc`: the classic recipe by default, VOC2007+2012 trainval for training, VOC2007 test to evaluate."""
    require_task(cfg.format, task, ("detection",))
    return detection_splits(
        partial(voc_split, cfg),
        aug=aug,
        need_train=need_train,
        grouping=cfg.aspect_ratio_grouping,
        require_images=require_images,
    )
