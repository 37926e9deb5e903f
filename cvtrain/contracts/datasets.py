"""What a dataset may offer beyond `__len__` and `__getitem__`, as the engine and the commands ask for it: each
capability a runtime-checkable Protocol, asked with `isinstance` (tests/test_architecture.py refuses a `getattr`
or `hasattr` on a dataset or task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class GroupsBatches(Protocol):
    """A training dataset that forms its own batches (e.g. images of similar aspect ratio together): the loader's
    batch sampler is `batch_sampler_factory(sampler, batch_size)`."""

    batch_sampler_factory: Callable[[Any, int], Any]


@runtime_checkable
class ChangesWithEpoch(Protocol):
    """A dataset whose samples change with the epoch (e.g. mosaic off for the last epochs)."""

    def set_epoch(self, epoch: int, epochs: int) -> None: ...


@runtime_checkable
class TransformsSamples(Protocol):
    """A dataset whose samples go through `transforms(image, target)`; None reads them as stored."""

    transforms: Callable[..., Any] | None


@runtime_checkable
class TransformsImages(Protocol):
    """A dataset whose images go through `transform(image)` (torchvision's ImageFolder); None reads them as
    stored."""

    transform: Callable[..., Any] | None
