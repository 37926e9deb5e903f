"""What the training loop measures as it goes: loss means and images/s (`LossMeter`), and the share of the time
spent waiting for the next batch (`DataWait`). Both cost no device synchronisation of their own."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

import torch

from cvtrain.engine import distributed

T = TypeVar("T")


def rate_text(images_per_s: float) -> str:
    """A throughput for the log: whole images/s, or two significant digits below 10 (a detector on a CPU trains
    well under one image a second: "0.42 img/s", not "0 img/s")."""
    return f"{images_per_s:.0f} img/s" if images_per_s >= 10 else f"{images_per_s:.2g} img/s"


class LossMeter:
    """Sums losses on the device and syncs only every `log_every` steps, so logging costs no GPU stall."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.finite: torch.Tensor | None = None  # all training losses finite so far (checked without a sync)
        self.steps = 0
        self.images = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], images: int) -> None:
        for name, value in losses.items():
            v = value.detach().float()
            self.sums[name] = self.sums[name] + v if name in self.sums else v
        ok = torch.isfinite(losses["loss"].detach())
        self.finite = ok if self.finite is None else self.finite & ok
        self.steps += 1
        self.images += images

    def flush(self) -> tuple[dict[str, float], float]:
        means = {k: distributed.all_reduce_mean(v / self.steps).item() for k, v in self.sums.items()}
        rate = self.images * distributed.world_size() / max(1e-9, time.perf_counter() - self.start)
        self.__init__()
        return means, rate

    def all_finite(self) -> bool:
        """On every rank: whether every rank's losses were finite (all ranks then stop or roll back together)."""
        return not distributed.any_rank(self.finite is not None and not bool(self.finite))


class DataWait(Generic[T]):
    """Iterates `batches` (a DataLoader), timing how long each `next()` blocks.

    `share()` is the time waited over the time since iteration began (worker start-up included: the first step
    waits for it). Host time, from `perf_counter`, with no device sync: on a GPU the host queues kernels ahead of
    the device, so a wait can overlap kernels still running and the share slightly overstates the device's idle
    time. Over an epoch the host keeps pace with the device (the loss is synced every `log_every` steps and the
    kernel queue is bounded), so a run bound by its data still shows a high share.
    """

    def __init__(self, batches: Iterable[T]):
        self.batches = batches
        self.waited = 0.0
        self.start: float | None = None

    def __iter__(self) -> Iterator[T]:
        begin = time.perf_counter()
        if self.start is None:
            self.start = begin
        iterator = iter(self.batches)  # starts the workers: part of the first wait
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                self.waited += time.perf_counter() - begin
            yield batch
            begin = time.perf_counter()

    def elapsed(self) -> float:
        return 0.0 if self.start is None else time.perf_counter() - self.start

    def share(self) -> float:
        elapsed = self.elapsed()
        return self.waited / elapsed if elapsed > 0 else 0.0
