"""DataLoaders: the sampler comes from `distributed` (sharded when a process group exists)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvtrain.engine import distributed


def _seed_worker(worker_id: int) -> None:
    # torch seeds `random` and itself per worker; numpy needs it too, or every worker draws the same numbers.
    np.random.seed(torch.initial_seed() % 2**32)


def _common(
    num_workers: int, pin_memory: bool, persistent_workers: bool, device: torch.device
) -> dict[str, Any]:
    return {
        "num_workers": num_workers,
        "pin_memory": pin_memory and device.type == "cuda",
        "persistent_workers": persistent_workers and num_workers > 0,
        "worker_init_fn": _seed_worker,
    }


def train_loader(
    dataset: Dataset,
    *,
    collate: Callable,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
    seed: int,
    device: torch.device,
    batch_sampler_factory: Callable[[Any, int], Any] | None = None,
) -> DataLoader:
    """`batch_sampler_factory(sampler, batch_size)` lets a dataset group batches (e.g. by aspect ratio)."""
    sampler = distributed.train_sampler(dataset, seed)
    common = _common(num_workers, pin_memory, persistent_workers, device)
    generator = torch.Generator().manual_seed(seed)
    if batch_sampler_factory is not None:
        loader = DataLoader(
            dataset,
            batch_sampler=batch_sampler_factory(sampler, batch_size),
            collate_fn=collate,
            generator=generator,
            **common,
        )
    else:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=len(dataset) >= 2 * batch_size,
            collate_fn=collate,
            generator=generator,
            **common,
        )
    loader.sampler_for_epoch = (
        sampler  # so the loop can call set_epoch on it, whichever way batches are formed
    )
    return loader


def eval_loader(
    dataset: Dataset,
    *,
    collate: Callable,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
    device: torch.device,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=distributed.ShardSampler(len(dataset)),
        collate_fn=collate,
        **_common(num_workers, pin_memory, persistent_workers, device),
    )
