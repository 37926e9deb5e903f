"""Everything that depends on the process rank: process group, device, samplers, gathering evaluators.

cvtrain runs on PyTorch's own distributed engine: `torchrun --nproc_per_node=N -m cvtrain.cli fit ...` starts N
processes; each reads RANK / WORLD_SIZE / LOCAL_RANK from the environment. Without them this is one process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler

from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.outputs import PredictionSink
from cvtrain.errors import ConfigError

log = logging.getLogger(__name__)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device_name: str) -> torch.device:
    """Start the process group when launched by torchrun, and pick this process's device."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto."
        )
    device = torch.device(device_name)
    if device.type == "cuda":
        # An explicit index: torch.cuda.set_device refuses a bare "cuda" (seen with torch 2.11 on an H200).
        index = int(os.environ.get("LOCAL_RANK", "0")) if launched else device.index
        device = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        torch.cuda.set_device(device)
    if launched and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if not is_main():  # only rank 0 prints
            logging.getLogger().setLevel(logging.WARNING)
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_sampler(dataset: Dataset, seed: int) -> DistributedSampler:
    """Shuffling sampler, sharded across processes; call `set_epoch(e)` so each epoch (and a resume) reshuffles
    reproducibly. With one process this is an ordinary seeded shuffle."""
    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)


class ShardSampler(Sampler[int]):
    """Evaluation sampler: every sample exactly once across processes (no padding duplicates, unlike
    DistributedSampler), in order within a shard."""

    def __init__(self, dataset_len: int):
        self.indices = list(range(rank(), dataset_len, world_size()))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics, an EMA copy's too).

    DDP keeps the parameters identical, but each process updates its buffers from its own batches; evaluating
    with them would score every shard with a slightly different model, and not the one rank 0 checkpoints.
    """
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def merge_evaluator(evaluator: Evaluator) -> Evaluator:
    """Gather every rank's evaluator and fold them into one (on every rank)."""
    if world_size() == 1:
        return evaluator
    gathered: list[Evaluator | None] = [None] * world_size()
    dist.all_gather_object(gathered, evaluator)
    merged = gathered[0]
    assert merged is not None
    for other in gathered[1:]:
        assert other is not None
        merged.merge(other)
    return merged


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank."""
    if world_size() == 1:
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def min_over_ranks(value: int) -> int:
    """The smallest `value` of all ranks, on every rank."""
    if world_size() == 1:
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    smallest = torch.tensor([value], device=device)
    dist.all_reduce(smallest, op=dist.ReduceOp.MIN)
    return int(smallest.item())


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order (a one-element list without a process group)."""
    if world_size() == 1:
        return [obj]
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def finish_sinks(sinks: list[PredictionSink]) -> None:
    """Give every sink all ranks' records (rank order) and let rank 0 write its summary file."""
    for sink in sinks:
        sink.records = [r for part in gather_objects(sink.records) for r in part]  # type: ignore[union-attr]
        if is_main():
            sink.write()
