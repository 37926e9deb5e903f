"""What every detection builder (`data=voc`, `data=coco`, the detection form of `data=shapes`) does the same way.

Training datasets get `detection_transforms(aug, train=True)`, evaluation datasets the evaluation pipeline (the
float conversion only, or the letterbox of `aug=yolo`). With `data.aspect_ratio_grouping=true` the training
dataset carries a `batch_sampler_factory(sampler, batch_size)` (see `GroupedBatchSampler`) that the engine's
loaders use; with `aug.mosaic > 0` it is wrapped in a `MosaicDataset`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Sampler

from cvtrain.data.splits import DataSplits
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.data.transforms.mosaic import with_mosaic
from cvtrain.errors import ConfigError

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


def group_by_aspect_ratio(dataset: Any) -> Any:
    """Give a detection dataset (one with `aspect_ratios()`) its aspect-ratio `batch_sampler_factory`."""
    dataset.batch_sampler_factory = AspectRatioGrouping(tuple(aspect_ratio_groups(dataset.aspect_ratios())))
    return dataset


# ---------------------------------------------------------------------------------------------------- splits

# make(train=..., transforms=...) -> one split of a detection dataset (VOCDetection, COCODetection, ...).
MakeSplit = Callable[..., Any]


def detection_splits(
    make: MakeSplit, *, aug: Any, need_train: bool, grouping: bool, require_images: bool = True
) -> DataSplits:
    """The training split (transforms, optional aspect-ratio grouping and mosaic) and the validation split.

    `require_images=False` (scoring a predictions file) reads the validation annotations without their images.
    """
    train = None
    if need_train:
        train = make(train=True, transforms=detection_transforms(aug, train=True))
        if grouping:
            group_by_aspect_ratio(train)
        if aug.mosaic > 0:  # a 4-image mosaic before the transforms
            train = with_mosaic(train, aug)
    val = make(train=False, transforms=detection_transforms(aug, train=False), require_images=require_images)
    return DataSplits(train=train, val=val, class_names=list(val.class_names))
