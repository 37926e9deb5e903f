"""`data=synthetic`: random ready-made image tensors in memory, to time the loop without disk or decoding."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from cvtrain.data.splits import DataSplits, require_task


class SyntheticClassification(Dataset):
    """`length` random uint8 images [3, S, S] (as a decoding pipeline delivers them) and random labels, generated
    once from a seed."""

    def __init__(self, *, length: int, image_size: int, num_classes: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        # One shared pool of distinct images keeps memory small for long datasets.
        self.pool = torch.randint(
            0, 256, (min(length, 64), 3, image_size, image_size), generator=g, dtype=torch.uint8
        )
        self.labels = torch.randint(num_classes, (length,), generator=g)
        self.classes = [f"class_{i}" for i in range(num_classes)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
        return (
            self.pool[index % len(self.pool)],
            int(self.labels[index]),
            {"path": f"synthetic/{index}", "image_id": index},
        )


def build_synthetic(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    """Training and validation sets of `length` samples each, from different seeds (`aug` is not used)."""
    require_task(cfg.format, task, ("classification",))
    common = dict(length=cfg.length, image_size=cfg.image_size, num_classes=cfg.num_classes)
    train = SyntheticClassification(**common, seed=0) if need_train else None
    val = SyntheticClassification(**common, seed=1)
    return DataSplits(train=train, val=val, class_names=val.classes)
