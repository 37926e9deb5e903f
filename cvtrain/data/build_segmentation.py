"""Segmentation datasets from the `data` group: `data=voc_seg`, `data=coco_seg` and the segmentation form of
`data=shapes`.

Registered in `cvtrain/data/build.py`. Training datasets get `segmentation_transforms(aug, train=True)` (random
scale, padded crop of `aug.image_size`, flip); evaluation datasets are normalised only and keep every image's
full resolution. Extra training data (SBD for VOC) never reaches evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from cvtrain.config import choice
from cvtrain.data.coco_seg import COCOSegmentation
from cvtrain.data.seg_transforms import segmentation_transforms
from cvtrain.data.shapes_segmentation import SHAPES_SEGMENTATION_CLASSES, ensure_shapes_segmentation
from cvtrain.data.voc_seg import VOCSegmentation
from cvtrain.errors import ConfigError

if TYPE_CHECKING:
    from cvtrain.data.build import DataSplits


def _splits(train: Any, val: Any) -> DataSplits:
    from cvtrain.data.build import (
        DataSplits,
    )  # deferred: cvtrain.data.build imports this module to register it

    return DataSplits(train=train, val=val, class_names=list(val.class_names))


def _require_segmentation(fmt: str, task: str) -> None:
    if task != "segmentation":
        raise ConfigError(
            f"data={fmt} provides segmentation data but the model is a {task} model. "
            "Pick a segmentation model (e.g. model=fcn) or a dataset for the task."
        )


def _given(cfg: Any, key: str) -> Any:
    """`cfg.<key>`, or None when it is unset (`???` in a DictConfig)."""
    if isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, key):
        return None
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)


def build_voc_seg(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    """`data=voc_seg`: `train_split` (plus SBD when `sbd_root` is set) for training, `val_split` (never SBD)."""
    _require_segmentation(cfg.format, task)
    root = _given(cfg, "root")
    if root is None:
        raise ConfigError(
            "data=voc_seg needs data.root=DIR: the VOCdevkit folder holding VOC2012/JPEGImages, "
            "VOC2012/SegmentationClass and VOC2012/ImageSets/Segmentation"
        )
    train = None
    if need_train:
        train = VOCSegmentation(
            root=root,
            split=cfg.train_split,
            sbd_root=cfg.sbd_root,
            transforms=segmentation_transforms(aug, train=True),
        )
    val = VOCSegmentation(
        root=root, split=cfg.val_split, transforms=segmentation_transforms(aug, train=False)
    )
    return _splits(train, val)


def coco_seg_paths(cfg: Any, split: str) -> tuple[Path, Path]:
    """(annotation json, image folder) of `split` ("train" or "val"): the explicit paths, else under `root`."""
    ann, images = cfg.get(f"{split}_ann"), cfg.get(f"{split}_images")
    if ann is None or images is None:
        root = _given(cfg, "root")
        if root is None:
            raise ConfigError(
                f"data=coco_seg needs data.root=DIR (holding annotations/instances_{split}2017.json and "
                f"{split}2017/), or both data.{split}_ann=FILE and data.{split}_images=DIR"
            )
        root = Path(root).expanduser()
        ann = ann if ann is not None else root / "annotations" / f"instances_{split}2017.json"
        images = images if images is not None else root / f"{split}2017"
    return Path(ann).expanduser(), Path(images).expanduser()


def coco_seg_dataset(cfg: Any, *, train: bool, transforms: Any) -> COCOSegmentation:
    ann_file, image_dir = coco_seg_paths(cfg, "train" if train else "val")
    return COCOSegmentation(
        ann_file=ann_file,
        image_dir=image_dir,
        classes=choice(cfg.classes),  # type: ignore[arg-type]
        cache_dir=cfg.cache_dir,
        transforms=transforms,
        drop_empty=train and cfg.drop_empty,  # evaluation always keeps every image
    )


def build_coco_seg(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    """`data=coco_seg`: label maps rasterised from the instance annotations (cached under `cache_dir`)."""
    _require_segmentation(cfg.format, task)
    train = None
    if need_train:
        train = coco_seg_dataset(cfg, train=True, transforms=segmentation_transforms(aug, train=True))
    val = coco_seg_dataset(cfg, train=False, transforms=segmentation_transforms(aug, train=False))
    if train is not None and train.class_names != val.class_names:
        raise ConfigError(
            f"the categories of {train.ann_file} and {val.ann_file} differ: with data.classes=all, train and "
            "validation annotation files must list the same categories"
        )
    return _splits(train, val)


def build_shapes_segmentation(cfg: Any, aug: Any, need_train: bool) -> DataSplits:
    """The segmentation form of `data=shapes`: `scene_size` scenes in the VOC layout, read by the VOC loader."""
    root = ensure_shapes_segmentation(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.scene_size,
        train_images=cfg.train_images,
        val_images=cfg.val_images,
        seed=cfg.seed,
    )
    train = None
    if need_train:
        train = VOCSegmentation(
            root=root,
            split="train",
            class_names=SHAPES_SEGMENTATION_CLASSES,
            transforms=segmentation_transforms(aug, train=True),
        )
    val = VOCSegmentation(
        root=root,
        split="val",
        class_names=SHAPES_SEGMENTATION_CLASSES,
        transforms=segmentation_transforms(aug, train=False),
    )
    return _splits(train, val)


def eval_segmentation_transforms(aug: Any) -> Any:
    """The evaluation pipeline, also used by `cvtrain predict` on arbitrary images (normalise only)."""
    return segmentation_transforms(aug, train=False)
