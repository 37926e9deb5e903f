"""What a fit run stores in a checkpoint to resume from: every random number generator's state."""

import random

import numpy as np
import torch

from cvtrain.engine.checkpoints.training import rng_state, set_rng_state


def test_rng_states_restore_every_generator() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
