"""Datasets from the `data` group: one small builder per format, chosen by `data.format`.

The task comes from the model (`model.task`), so `data=shapes` gives the form the model needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cvtrain.data.build_detection import (
    build_coco,
    build_shapes_detection,
    build_voc,
    eval_detection_transforms,
)
from cvtrain.data.build_segmentation import (
    build_coco_seg,
    build_shapes_segmentation,
    build_voc_seg,
    eval_segmentation_transforms,
)
from cvtrain.data.imagefolder import ImageFolderDataset, find_classes, read_synset_mapping
from cvtrain.data.shapes import SHAPE_CLASSES, ensure_classification
from cvtrain.data.synthetic import SyntheticClassification
from cvtrain.data.transforms import classification_transforms
from cvtrain.errors import ConfigError


@dataclass
class DataSplits:
    train: Dataset | None  # None when only evaluating
    val: Dataset
    class_names: list[str]


def _require_task(fmt: str, task: str, supported: tuple[str, ...]) -> None:
    if task not in supported:
        raise ConfigError(
            f"data={fmt} provides {' / '.join(supported)} data but the model is a {task} model. "
            f"Pick a {task} dataset (e.g. data=shapes) or a {supported[0]} model."
        )


def _class_folders(root: Path, cfg: Any) -> list[str]:
    train_dir = root / cfg.train_dir
    return find_classes(train_dir if train_dir.is_dir() else root / cfg.val_dir)


def _imagefolder(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    _require_task(cfg.format, task, ("classification",))
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"data.root={cfg.root} is not a folder. Point data.root at the dataset's top folder."
        )
    classes = _class_folders(root, cfg)
    names = classes
    if cfg.synset_mapping and (root / cfg.synset_mapping).is_file():
        names = read_synset_mapping(root / cfg.synset_mapping, classes)
    train = None
    if need_train:
        train = ImageFolderDataset(
            split_dir=root / cfg.train_dir,
            classes=classes,
            transform=classification_transforms(aug, train=True),
        )
    val = ImageFolderDataset(
        split_dir=root / cfg.val_dir, classes=classes, transform=classification_transforms(aug, train=False)
    )
    return DataSplits(train=train, val=val, class_names=names)


def _shapes_classification(cfg: Any, aug: Any, need_train: bool) -> DataSplits:
    root = ensure_classification(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.image_size,
        train_per_class=cfg.train_per_class,
        val_per_class=cfg.val_per_class,
        seed=cfg.seed,
    )
    classes = list(SHAPE_CLASSES)
    train = None
    if need_train:
        train = ImageFolderDataset(
            split_dir=root / "train", classes=classes, transform=classification_transforms(aug, train=True)
        )
    val = ImageFolderDataset(
        split_dir=root / "val", classes=classes, transform=classification_transforms(aug, train=False)
    )
    return DataSplits(train=train, val=val, class_names=classes)


# data=shapes gives the form the model's task needs.
SHAPES_FORMS: dict[str, Callable[[Any, Any, bool], DataSplits]] = {
    "classification": _shapes_classification,
    "detection": build_shapes_detection,
    "segmentation": build_shapes_segmentation,
}


def _shapes(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    if task not in SHAPES_FORMS:
        raise ConfigError(f"data=shapes has no {task} form.")
    return SHAPES_FORMS[task](cfg, aug, need_train)


def _synthetic(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    _require_task(cfg.format, task, ("classification",))
    common = dict(length=cfg.length, image_size=cfg.image_size, num_classes=cfg.num_classes)
    train = SyntheticClassification(**common, seed=0) if need_train else None
    val = SyntheticClassification(**common, seed=1)
    return DataSplits(train=train, val=val, class_names=val.classes)


# Builders by `data.format`: (data cfg, aug cfg, task name, need_train) -> DataSplits.
BUILDERS: dict[str, Callable[[Any, Any, str, bool], DataSplits]] = {
    "imagefolder": _imagefolder,
    "imagenet": _imagefolder,
    "shapes": _shapes,
    "synthetic": _synthetic,
    "voc": build_voc,
    "coco": build_coco,
    "voc_seg": build_voc_seg,
    "coco_seg": build_coco_seg,
}


def build_datasets(cfg: Any, aug: Any, *, task: str, need_train: bool = True) -> DataSplits:
    if cfg.format not in BUILDERS:
        raise ConfigError(f"data.format={cfg.format!r} is not known; choose one of {sorted(BUILDERS)}.")
    return BUILDERS[cfg.format](cfg, aug, task, need_train)


# The evaluation transform of each task, also used by `cvtrain predict` on arbitrary images.
EVAL_TRANSFORMS: dict[str, Callable[[Any], Callable | None]] = {
    "classification": lambda aug: classification_transforms(aug, train=False),
    "detection": eval_detection_transforms,
    "segmentation": eval_segmentation_transforms,
}


def eval_transform(task: str, aug: Any) -> Callable | None:
    return EVAL_TRANSFORMS[task](aug)
