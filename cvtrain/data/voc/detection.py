"""`data=voc`: Pascal VOC detection (a `VOCdevkit` folder with VOC2007/ and/or VOC2012/), and its builder.

Every XML is parsed once, at construction, by `voc_xml.read_voc_xml` (box convention and checks there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.annotations.class_names import VOC_CLASSES
from cvtrain.data.annotations.records import RecordsGroundTruth, VOCRecord, records_to_coco
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.samples.detection import DetectionTransforms, Sample, load_sample
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.data.voc.xml import read_voc_xml
from cvtrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)

VOC_SPLITS = ("train", "val", "trainval", "test")


class VOCDetection(RecordsGroundTruth):
    """Pascal VOC detection; several years concatenate (e.g. `years=[2007, 2012], split="trainval"`).

    `difficult` objects stay out of the training targets unless `use_difficult`, but are always in `records`
    (the evaluator ignores them). `require_images=False` skips the JPEGImages check, for scoring a results file
    without the pictures. `class_names` defaults to the 20 VOC classes in the standard order (`data.classes`
    and the synthetic shapes data pass their own).

    Annotation defects follow `checks` (`data.on_bad_annotation`, see `annotations/checks.py`): an XML that is
    missing or does not parse (the image is skipped), an object of a class not in `class_names`, a `<bndbox>`
    that is missing, not numbers, empty or wholly outside the image (the object is skipped); a box partly outside
    is clipped in the targets. Duplicate image ids and a split without a single usable object are errors.
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
        checks: AnnotationLog | None = None,
    ):
        self.root = Path(root).expanduser()
        self.split = split
        self.use_difficult = use_difficult
        self.transforms = transforms
        self.class_names = list(class_names)
        self.checks = checks if checks is not None else AnnotationLog()
        since = len(self.checks.problems)
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
        self.checks.report(self.root, since)
        if not any(len(r.labels) for r in self.records):
            years_read = ", ".join(f"VOC{y}" for y in years)
            self.checks.error(
                self.root,
                f"split '{split}' of {years_read}",
                f"no usable object: {len(self.records)} image(s) with annotations"
                + (
                    f" ({self.checks.summary(since)}: see the warning above)"
                    if len(self.checks.problems) > since
                    else ""
                ),
                "check data.root, the split files under ImageSets/Main and data.classes",
            )

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
        records = (self._parse(year_dir, stem, split_file) for stem in stems)
        return [r for r in records if r is not None]

    def _parse(self, year_dir: Path, stem: str, split_file: Path) -> VOCRecord | None:
        """The record of one image; None when its XML is skipped (`checks`)."""
        image_path = year_dir / "JPEGImages" / f"{stem}.jpg"
        found = read_voc_xml(
            year_dir / "Annotations" / f"{stem}.xml",
            image_path,
            class_names=self.class_names,
            checks=self.checks,
            split_file=split_file,
        )
        if found is None:
            return None
        return VOCRecord(
            image_id=stem,
            path=image_path,
            width=found.width,
            height=found.height,
            boxes=np.asarray(found.boxes, dtype=np.float64).reshape(-1, 4),
            labels=np.asarray(found.labels, dtype=np.int64),
            difficult=np.asarray(found.difficult, dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample | BadSample:
        record = self.records[index]
        keep = slice(None) if self.use_difficult else ~record.difficult
        return load_sample(
            record.path,
            record.image_id,
            record.boxes[keep],
            record.labels[keep],
            self.transforms,
            size=(record.height, record.width),  # <size>: checked against the decoded image
        )

    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the XML `<size>` (no decoding), for aspect-ratio grouping."""
        return [r.width / r.height for r in self.records]

    def to_coco(self) -> dict[str, Any]:
        """A COCO-format ground-truth view of these annotations, for computing COCO AP on VOC data (category ids
        are the 1-based class index, image ids `coco_image_ids[stem]`, difficult objects crowds: see
        `records_to_coco`)."""
        return records_to_coco(self.records, self.class_names, self.coco_image_ids)

    @property
    def ground_truth_source(self) -> str:
        return str(self.root)


def voc_split(
    cfg: Any,
    *,
    train: bool,
    transforms: DetectionTransforms | None = None,
    require_images: bool = True,
    checks: AnnotationLog | None = None,
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
        class_names=voc_class_names(cfg.classes),
        checks=checks,
    )


def voc_class_names(classes: Sequence[str] | None) -> tuple[str, ...]:
    """`data.classes` (the object classes of VOC-layout data; None: the 20 VOC classes), checked."""
    if classes is None:
        return VOC_CLASSES
    names = tuple(str(c) for c in classes)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if not names or repeated or "" in names:
        raise ConfigError(
            f"data.classes={list(names)}: list each object class once, e.g. data.classes=[cat,dog]"
            + (f" ({repeated} repeated)" if repeated else "")
        )
    return names


def build_voc(cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True) -> DataSplits:
    """`data=voc`: the classic recipe by default, VOC2007+2012 trainval for training, VOC2007 test to evaluate."""
    require_task(cfg.format, task, ("detection",))
    checks = AnnotationLog(cfg.on_bad_annotation)
    splits = detection_splits(
        partial(voc_split, cfg, checks=checks),
        aug=aug,
        need_train=need_train,
        grouping=cfg.aspect_ratio_grouping,
        require_images=require_images,
    )
    splits.problems = checks.problems
    return splits
