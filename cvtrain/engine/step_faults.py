"""What a training run says when a step fails: the device ran out of memory, or the loss is no longer finite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from cvtrain.errors import CvtrainError


@contextlib.contextmanager
def out_of_memory_advice(device: torch.device, step: int, batch_size: int) -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise CvtrainError(
            f"{device} ran out of memory at step {step + 1} with a batch of {batch_size} images per "
            "process. Try a smaller data.batch_size, trainer.accumulate=K (the same effective batch in K "
            "smaller steps), or lower precision (trainer.precision=bf16 or 16)."
            f" ({str(e).splitlines()[0]})"
        ) from None


ADVICE = "Lower optim.lr, set trainer.grad_clip, or use trainer.precision=32"


class Diverged(CvtrainError):
    """The training loss is no longer finite at optimizer step `step` of epoch `epoch` (0-based); every rank
    raises it at the same step (the loss is checked after a reduction over the ranks)."""

    def __init__(self, step: int, epoch: int, value: float):
        self.step, self.epoch, self.value = step, epoch, value
        super().__init__(
            f"the loss became {value} at step {step} (epoch {epoch + 1}). {ADVICE}; or trainer.on_nan=rollback "
            "to go back to the last good state with half the learning rate."
        )
