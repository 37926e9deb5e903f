"""DataLoaders: the sampler comes from `distributed` (sharded when a process group exists); training batches
come through `sampling.py`, so a run resumes exactly mid-epoch; workers are set up by `cvtrain.workers`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from cvtrain.engine import distributed
from cvtrain.engine.sampling import ResumableBatches, SeededSamples
from cvtrain.workers import worker_init_fn


def _common(
    num_workers: int, pin_memory: bool, persistent_workers: bool, device: torch.device
) -> dict[str, Any]:
    return {
        "num_workers": num_workers,
        "pin_memory": pin_memory and device.type == "cuda",
        "persistent_workers": persistent_workers and num_workers > 0,
        "worker_init_fn": worker_init_fn(),
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
    """Shuffled, sharded batches that a checkpoint can resume mid-epoch (`cvtrain/engine/sampling.py`).

    `batch_sampler_factory(sampler, batch_size)` lets a dataset group batches (e.g. by aspect ratio); call
    `loader.batch_sampler.set_epoch(epoch, skip=batches_done)` before each epoch."""
    sampler = distributed.train_sampler(dataset, seed)
    if batch_sampler_factory is not None:
        batches = batch_sampler_factory(sampler, batch_size)
    else:
        batches = BatchSampler(sampler, batch_size, drop_last=len(dataset) >= 2 * batch_size)
    return DataLoader(
        SeededSamples(dataset, seed=seed),
        batch_sampler=ResumableBatches(batches=batches, sampler=sampler),
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        **_common(num_workers, pin_memory, persistent_workers, device),
    )


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
        # its own generator: without one, starting the loader draws from the global RNG, and a run evaluated
        # mid-epoch (trainer.max_steps) would then continue with other dropout than an uninterrupted one
        generator=torch.Generator().manual_seed(0),
        **_common(num_workers, pin_memory, persistent_workers, device),
    )
