"""MixUp (Zhang et al., 2018) and CutMix (Yun et al., 2019) on a collated classification batch, with
torchvision.transforms.v2's `MixUp` / `CutMix` (and `RandomChoice` between them when both are on, as torchvision's
reference training scripts do).

They pair each image with its neighbour in the (shuffled) batch and return soft targets [B, classes] that sum to 1.
The classification task applies them in `training_step` only, on the main process: the draws come from torch's
global generator, whose state the checkpoints keep, so a resumed run mixes its batches as the first run did.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from cvtrain.errors import ConfigError

BatchMix = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batch_mix(*, mixup: float, cutmix: float, num_classes: int) -> BatchMix | None:
    """The batch transform of `aug.mixup` / `aug.cutmix` (Beta alphas, 0 = off), or None when both are off:
    (images [B, 3, H, W] float, labels [B]) -> (mixed images, soft targets [B, num_classes])."""
    for key, alpha in (("aug.mixup", mixup), ("aug.cutmix", cutmix)):
        if alpha < 0:
            raise ConfigError(
                f"{key}={alpha}: the Beta distribution's alpha must be > 0 (0 = off); 0.2-1.0 are usual."
            )
    mixes = [
        cls(alpha=alpha, num_classes=num_classes)
        for cls, alpha in ((v2.MixUp, mixup), (v2.CutMix, cutmix))
        if alpha > 0
    ]
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
