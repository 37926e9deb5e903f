"""Per-sample seeding: a sample's random draws depend only on (seed, epoch, index), whether the DataLoader fetches
it alone or with its batch (`__getitems__`), in the training process or in a worker; the training process's own
generators are left as they were."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvtrain.engine.sampling import SeededSamples


class Draws(Dataset):
    """Each sample is one draw from each of the three CPU generators that augmentations use."""

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[int, float, float, float]:
        return index, torch.rand(1).item(), random.random(), float(np.random.rand())


KEYS = [(3, i) for i in (5, 0, 63, 17)]


def states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def same_states(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])


def test_a_batch_draws_what_its_samples_draw_one_by_one() -> None:
    samples = SeededSamples(Draws(), seed=7)
    assert samples.__getitems__(KEYS) == [samples[key] for key in KEYS]
    assert samples[(3, 5)] != samples[(4, 5)] != samples[(3, 6)]  # epoch and index both count


def test_the_training_process_generators_are_left_as_they_were() -> None:
    samples = SeededSamples(Draws(), seed=7)
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    before = states()
    samples.__getitems__(KEYS)
    samples[KEYS[0]]
    assert same_states(before, states())


def test_workers_and_the_training_process_fetch_the_same_batches() -> None:
    samples = SeededSamples(Draws(), seed=7)
    batches = [KEYS, [(0, i) for i in range(8)]]

    def fetched(workers: int) -> list:
        loader = DataLoader(samples, batch_sampler=batches, num_workers=workers, collate_fn=list)
        return list(loader)

    assert fetched(0) == fetched(1) == [[samples[key] for key in keys] for keys in batches]
