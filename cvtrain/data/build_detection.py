"""Detection datasets from the `data` group: `data=voc`, `data=coco` and the detection form of `data=shapes`.

Registered in `cvtrain/data/build.py`. Training datasets get `detection_transforms(aug, train=True)`; evaluation
datasets the float conversion only. With `data.aspect_ratio_grouping=true` the training dataset carries a
`batch_sampler_factory(sampler, batch_size)` (see `GroupedBatchSampler`) that `cvtrain.engine.loaders` uses.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import Sampler

from cvtrain.config import choice
from cvtrain.data.coco import COCODetection, DetectionTransforms
from cvtrain.data.det_transforms import detection_transforms
from cvtrain.data.shapes import SHAPE_CLASSES
from cvtrain.data.shapes_detection import ensure_shapes_detection, shapes_coco_paths, shapes_voc_root
from cvtrain.data.voc import VOCDetection
from cvtrain.errors import ConfigError

if TYPE_CHECKING:
    from cvtrain.data.build import DataSplits

DetectionDataset = VOCDetection | COCODetection


# ------------------------------------------------------------------------------------------ aspect-ratio grouping


def aspect_ratio_groups(ratios: Sequence[float]) -> list[int]:
    """Group id per image: 0 for landscape or square (width >= height), 1 for portrait."""
    return [0 if ratio >= 1.0 else 1 for ratio in ratios]


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches drawn in the order of `sampler`, each from a single group (e.g. landscape or portrait images).

    An index joins its group's open batch and the batch is yielded when full, so the sampler's order (a
    `DistributedSampler`'s per-epoch shuffle and shard) decides what trains when. Every epoch has exactly
    `len(sampler) // batch_size` batches (at least one) on every process, as DDP needs: the leftover partial
    batches, fullest first, are completed with repeats of their own group's images of this epoch, and what
    remains is dropped, as `drop_last` would.
    """

    def __init__(self, *, sampler: Sampler[int], group_ids: Sequence[int], batch_size: int):
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} must be at least 1")
        self.sampler = sampler
        self.group_ids = list(group_ids)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return max(1, len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        open_batches: dict[int, list[int]] = defaultdict(list)
        seen: dict[int, list[int]] = defaultdict(list)
        emitted = 0
        for index in self.sampler:
            group = self.group_ids[index]
            open_batches[group].append(index)
            seen[group].append(index)
            if len(open_batches[group]) == self.batch_size:
                yield open_batches.pop(group)
                emitted += 1
        for group in sorted(open_batches, key=lambda g: -len(open_batches[g])):
            if emitted >= len(self):
                return
            batch, pool = open_batches[group], seen[group]
            yield batch + [pool[i % len(pool)] for i in range(self.batch_size - len(batch))]
            emitted += 1


@dataclass(frozen=True)
class AspectRatioGrouping:
    """`batch_sampler_factory` of a training dataset (a picklable callable, so worker processes can start)."""

    group_ids: tuple[int, ...]

    def __call__(self, sampler: Sampler[int], batch_size: int) -> GroupedBatchSampler:
        return GroupedBatchSampler(sampler=sampler, group_ids=self.group_ids, batch_size=batch_size)


def group_by_aspect_ratio(dataset: DetectionDataset) -> DetectionDataset:
    dataset.batch_sampler_factory = AspectRatioGrouping(tuple(aspect_ratio_groups(dataset.aspect_ratios())))
    return dataset


# ----------------------------------------------------------------------------------------------- datasets


def voc_dataset(
    cfg: Any, *, train: bool, transforms: DetectionTransforms | None = None, require_images: bool = True
) -> VOCDetection:
    """`data=voc`: `years` x `train_split` for training, `val_years` (default: `years`) x `val_split` else."""
    years = cfg.years if train or cfg.val_years is None else cfg.val_years
    return VOCDetection(
        root=cfg.root,
        years=list(years),
        split=cfg.train_split if train else cfg.val_split,
        use_difficult=cfg.use_difficult,
        transforms=transforms,
        require_images=require_images,
    )


def coco_paths(cfg: Any, split: str) -> tuple[Path, Path]:
    """(annotation json, image folder) of `split` ("train" or "val"): the explicit paths, else under `root`."""
    return coco_annotation_path(cfg, split), _coco_path(cfg, split, "images")


def coco_annotation_path(cfg: Any, split: str) -> Path:
    return _coco_path(cfg, split, "ann")


def _coco_path(cfg: Any, split: str, kind: str) -> Path:
    explicit = cfg.get(f"{split}_{kind}")
    if explicit is not None:
        return Path(explicit).expanduser()
    if cfg.root is None:
        what = "FILE (a COCO-format json)" if kind == "ann" else "DIR (its images)"
        raise ConfigError(
            f"data=coco needs data.root=DIR (holding annotations/instances_{split}2017.json and {split}2017/), "
            f"or data.{split}_{kind}={what}"
        )
    root = Path(cfg.root).expanduser()
    return root / "annotations" / f"instances_{split}2017.json" if kind == "ann" else root / f"{split}2017"


def coco_dataset(
    cfg: Any, *, train: bool, transforms: DetectionTransforms | None = None, require_images: bool = True
) -> COCODetection:
    ann_file, image_dir = coco_paths(cfg, "train" if train else "val")
    return COCODetection(
        ann_file=ann_file,
        image_dir=image_dir,
        keep_empty=cfg.keep_empty,
        train=train,
        transforms=transforms,
        require_images=require_images,
    )


def shapes_detection_dir(cfg: Any) -> Path:
    """Write (once) and return the shapes detection data for `data=shapes`."""
    return ensure_shapes_detection(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.scene_size,
        train_images=cfg.train_images,
        val_images=cfg.val_images,
        seed=cfg.seed,
    )


def shapes_dataset(
    cfg: Any, *, train: bool, transforms: DetectionTransforms | None = None, require_images: bool = True
) -> DetectionDataset:
    """The shapes scenes through the real loaders, in the layout `data.layout` names (voc or coco)."""
    folder = shapes_detection_dir(cfg)
    split = "train" if train else "val"
    if choice(cfg.layout) == "coco":
        ann_file, image_dir = shapes_coco_paths(folder, split)
        return COCODetection(
            ann_file=ann_file,
            image_dir=image_dir,
            keep_empty=False,
            train=train,
            transforms=transforms,
            require_images=require_images,
        )
    return VOCDetection(
        root=shapes_voc_root(folder),
        years=[2007],
        split=split,
        transforms=transforms,
        require_images=require_images,
        class_names=SHAPE_CLASSES,
    )


# ----------------------------------------------------------------------------------------------- builders


def _require_detection(fmt: str, task: str) -> None:
    if task != "detection":
        raise ConfigError(
            f"data={fmt} provides detection data but the model is a {task} model. "
            "Pick a detection model (e.g. model=faster_rcnn) or a dataset for the task."
        )


def _splits(cfg: Any, aug: Any, need_train: bool, make: Any, grouping: bool) -> DataSplits:
    # Imported here: cvtrain.data.build imports this module to register its builders.
    from cvtrain.data.build import DataSplits

    train = None
    if need_train:
        train = make(cfg, train=True, transforms=detection_transforms(aug, train=True))
        if grouping:
            group_by_aspect_ratio(train)
        if getattr(aug, "mosaic", 0.0) > 0:
            from cvtrain.data.mosaic import with_mosaic  # aug.mosaic: 4-image mosaic before the transforms

            train = with_mosaic(train, aug)
    val = make(cfg, train=False, transforms=detection_transforms(aug, train=False))
    return DataSplits(train=train, val=val, class_names=list(val.class_names))


def build_voc(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    _require_detection(cfg.format, task)
    return _splits(cfg, aug, need_train, voc_dataset, cfg.aspect_ratio_grouping)


def build_coco(cfg: Any, aug: Any, task: str, need_train: bool) -> DataSplits:
    _require_detection(cfg.format, task)
    splits = _splits(cfg, aug, need_train, coco_dataset, cfg.aspect_ratio_grouping)
    if splits.train is not None and splits.train.label_to_cat_id != splits.val.label_to_cat_id:
        raise ConfigError(
            f"the categories of {splits.train.ann_file} and {splits.val.ann_file} differ: train and "
            "validation annotation files must list the same categories"
        )
    return splits


def build_shapes_detection(cfg: Any, aug: Any, need_train: bool) -> DataSplits:
    return _splits(cfg, aug, need_train, shapes_dataset, grouping=False)  # every scene is square


def eval_detection_transforms(aug: Any) -> DetectionTransforms:
    return detection_transforms(aug, train=False)
