"""Stochastic depth for torchvision's ResNet family (Huang et al., 2016, "Deep Networks with Stochastic Depth").

Each residual block's residual branch is dropped during training with probability p_l = l / L x P for the l-th of
the network's L blocks (l = 1..L), so the last block is dropped with probability P: the paper's linear decay of
the survival probability from 1 at the input to 1 - P at the last block. A dropped block passes its shortcut
through (the identity, or the downsampling projection of a stage's first block).

Scaling: torchvision's `StochasticDepth` (inverted, like dropout) divides a kept branch by its survival
probability 1 - p_l at training time and is the identity in evaluation, so the evaluated network is the plain,
undropped one. The paper instead scales each branch by 1 - p_l at test time; the two are equal in expectation.

How it wraps: the residual branch of a torchvision `BasicBlock` ends at `bn2`, that of a `Bottleneck` at `bn3`;
that BatchNorm becomes `Sequential(BatchNorm2d, StochasticDepth)`, so the block adds the (dropped or kept) branch
to its shortcut and applies its ReLU exactly as torchvision wrote it. The BatchNorm's state dict keys gain a `.0`
(`layer1.0.bn2.0.weight`); pretrained weights are loaded before wrapping.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import StochasticDepth

from cvtrain.errors import ConfigError

MODES = ("row", "batch")


def residual_blocks(model: nn.Module) -> list[BasicBlock | Bottleneck]:
    """The model's torchvision residual blocks, input to output."""
    return [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]


def drop_probabilities(num_blocks: int, p: float) -> list[float]:
    """p_l = l / L x p for l = 1..L: rising linearly to `p` at the last block."""
    return [p * (i + 1) / num_blocks for i in range(num_blocks)]


def add_stochastic_depth(model: nn.Module, p: float, mode: str = "row") -> None:
    """Drop each residual branch of `model` in training, with probabilities rising linearly with depth to `p`.

    mode "row" draws one decision per sample (the paper drops per mini-batch; "batch" does that)."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(
            f"model.stochastic_depth={p} must be in [0, 1): the last block's drop probability (0.2-0.5 are usual)."
        )
    if mode not in MODES:
        raise ConfigError(f"model.stochastic_depth_mode={mode!r}: choose row (per sample) or batch.")
    blocks = residual_blocks(model)
    if not blocks:
        raise ConfigError(
            f"model.stochastic_depth: {type(model).__name__} has no torchvision residual blocks; it applies to "
            "the ResNet family (resnet18, resnet50, resnext, wide_resnet). Leave model.stochastic_depth=0."
        )
    for block, p_block in zip(blocks, drop_probabilities(len(blocks), p), strict=True):
        name = "bn2" if isinstance(block, BasicBlock) else "bn3"  # the residual branch's last layer
        setattr(block, name, nn.Sequential(getattr(block, name), StochasticDepth(p_block, mode)))
