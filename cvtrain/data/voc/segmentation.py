"""`data=voc_seg`: Pascal VOC 2012 semantic segmentation, optionally with SBD added to training, and its builder.

Layout (`root` is the `VOCdevkit` folder, or its `VOC2012` folder):

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/SegmentationClass/<id>.png            palette PNG: pixel values are class indices 0..20, 255 = void
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

SBD (Hariharan et al.) adds ~9k training masks. `sbd_root` may hold `SegmentationClassAug/*.png` (index PNGs, as
DeepLab distributes them) or SBD's own `cls/*.mat` + `img/*.jpg` (`benchmark_RELEASE/dataset`, read with scipy).
SBD is used only for the train and trainval splits, and never for an image listed in VOC's `val.txt`, so no
validation image leaks into training; an image in both keeps VOC's mask (it has the void border).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.class_names import VOC_SEG_CLASSES
from cvtrain.data.decoding.palette import read_index_png
from cvtrain.data.samples.segmentation import JointTransform, SegmentationSample, load_segmentation_sample
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.data.transforms.segmentation import segmentation_transforms
from cvtrain.data.voc.detection import voc_class_names
from cvtrain.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SBD_SPLITS = ("train", "trainval")  # splits that SBD may extend; every other split (val) stays pure VOC


@dataclass(frozen=True)
class _Record:
    image_id: str
    image_path: Path
    mask_path: Path


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 segmentation: `(image, mask, meta)` samples, see `load_segmentation_sample`.

    `class_names` defaults to VOC's 21 (index 0 = background); pass another list for data in the same layout
    (the synthetic shapes form).
    """

    def __init__(
        self,
        *,
        root: str | Path,
        split: str,
        sbd_root: str | Path | None = None,
        transforms: JointTransform | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.voc_dir = _find_voc2012(Path(root).expanduser())
        self.split = split
        self.transforms = transforms
        self.class_names = list(class_names) if class_names is not None else list(VOC_SEG_CLASSES)
        if self.class_names[0] != "background":
            raise ConfigError(
                f"class_names must start with 'background' (index 0), got {self.class_names[:3]}"
            )
        split_ids = _read_split(self.voc_dir, split)
        records = [
            _Record(
                i, self.voc_dir / "JPEGImages" / f"{i}.jpg", self.voc_dir / "SegmentationClass" / f"{i}.png"
            )
            for i in split_ids
        ]
        if sbd_root is not None and split in SBD_SPLITS:
            excluded = set(_read_split(self.voc_dir, "val")) | set(split_ids)
            records += _sbd_records(Path(sbd_root).expanduser(), self.voc_dir, excluded)
        elif sbd_root is not None:
            logger.debug("data.sbd_root ignored for split %r: SBD only extends %s", split, SBD_SPLITS)
        _check_files_exist(records, self.voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt")
        self.records = records

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_ids(self) -> list[str]:
        return [r.image_id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> SegmentationSample | BadSample:
        record = self.records[index]
        reader = _read_sbd_mat if record.mask_path.suffix == ".mat" else read_index_png
        return load_segmentation_sample(
            image_path=record.image_path,
            image_id=record.image_id,
            read_mask=partial(reader, record.mask_path),
            mask_source=str(record.mask_path),
            num_classes=self.num_classes,
            transforms=self.transforms,
        )


def _find_voc2012(root: Path) -> Path:
    for candidate in (root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir() and (candidate / "SegmentationClass").is_dir():
            return candidate
    raise DataError(
        f"{root} is not a VOCdevkit: expected {root / 'VOC2012' / 'JPEGImages'} and "
        f"{root / 'VOC2012' / 'SegmentationClass'}; set data.root to the folder that contains VOC2012"
    )


def _read_split(voc_dir: Path, split: str) -> list[str]:
    split_file = voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        available = sorted(p.stem for p in split_file.parent.glob("*.txt"))
        raise DataError(
            f"split file {split_file} not found (available splits: {available or 'none'}); "
            "choose one of those or restore the file from the VOC2012 archive"
        )
    ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"split file {split_file} lists no images")
    return ids


def _sbd_records(sbd_root: Path, voc_dir: Path, excluded: set[str]) -> list[_Record]:
    """SBD masks whose id is not in `excluded` (VOC val and the split itself); images from SBD or VOC."""
    mask_dir, suffix = _sbd_mask_dir(sbd_root)
    sbd_image_dir = mask_dir.parent / "img"  # SBD's own layout keeps its JPEGs beside cls/
    records = []
    for mask_path in sorted(mask_dir.glob(f"*{suffix}")):
        image_id = mask_path.stem
        if image_id in excluded:
            continue
        image_path = sbd_image_dir / f"{image_id}.jpg"
        if not image_path.is_file():
            image_path = voc_dir / "JPEGImages" / f"{image_id}.jpg"
        records.append(_Record(image_id, image_path, mask_path))
    if not records:
        raise DataError(f"SBD folder {mask_dir} has no {suffix} masks outside VOC's val and the chosen split")
    logger.info("SBD: %d training masks added from %s", len(records), mask_dir)
    return records


def _sbd_mask_dir(sbd_root: Path) -> tuple[Path, str]:
    for candidate in (sbd_root / "SegmentationClassAug", sbd_root):
        if candidate.is_dir() and any(candidate.glob("*.png")):
            return candidate, ".png"
    for candidate in (sbd_root / "cls", sbd_root / "dataset" / "cls"):
        if candidate.is_dir() and any(candidate.glob("*.mat")):
            try:
                importlib.import_module("scipy.io")
            except ImportError as e:
                raise ConfigError(
                    f"SBD masks in {candidate} are MATLAB .mat files, which need scipy: `pip install scipy`, "
                    "or point data.sbd_root at a folder of SegmentationClassAug PNGs instead"
                ) from e
            return candidate, ".mat"
    raise DataError(
        f"data.sbd_root={sbd_root} holds no SBD masks: expected SegmentationClassAug/*.png, *.png, cls/*.mat "
        "or dataset/cls/*.mat"
    )


def _read_sbd_mat(path: Path) -> np.ndarray:
    import scipy.io  # checked at construction (`_sbd_mask_dir`)

    try:
        mat = scipy.io.loadmat(str(path))
        segmentation = mat["GTcls"]["Segmentation"][0][0]
    except Exception as e:  # scipy raises many types for a truncated or foreign .mat
        raise DataError(f"{path}: cannot read SBD mask GTcls.Segmentation ({e}); re-extract SBD") from e
    return np.asarray(segmentation, dtype=np.uint8)


def _check_files_exist(records: list[_Record], split_file: Path) -> None:
    missing = [p for r in records for p in (r.image_path, r.mask_path) if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise DataError(
            f"{len(missing)} files listed by {split_file} (or SBD) are missing, e.g. {shown}; "
            "re-extract the dataset or remove those ids from the split file"
        )


def build_voc_seg(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    """`data=voc_seg`: `train_split` (plus SBD when `sbd_root` is set) for training, `val_split` (never SBD).

    Training gets `segmentation_transforms(aug, train=True)` (random scale, padded crop of `aug.image_size`,
    flip); evaluation is normalised only and keeps every image's full resolution. `data.classes` names the mask
    values 1..K of VOC-layout data of one's own (None: VOC's 20); a mask value above K is a bad sample."""
    require_task(cfg.format, task, ("segmentation",))
    if cfg.root is None:
        raise ConfigError(
            "data=voc_seg needs data.root=DIR: the VOCdevkit folder holding VOC2012/JPEGImages, "
            "VOC2012/SegmentationClass and VOC2012/ImageSets/Segmentation"
        )
    if cfg.classes is not None and "background" in cfg.classes:
        raise ConfigError(
            f"data.classes={list(cfg.classes)}: list the classes of mask values 1..K only; value 0 is always "
            "'background' and is added for you"
        )
    class_names = ["background", *voc_class_names(cfg.classes)]
    train = None
    if need_train:
        train = VOCSegmentation(
            root=cfg.root,
            split=cfg.train_split,
            sbd_root=cfg.sbd_root,
            transforms=segmentation_transforms(aug, train=True),
            class_names=class_names,
        )
    val = VOCSegmentation(
        root=cfg.root,
        split=cfg.val_split,
        transforms=segmentation_transforms(aug, train=False),
        class_names=class_names,
    )
    return DataSplits(train=train, val=val, class_names=list(val.class_names))
