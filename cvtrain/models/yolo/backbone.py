"""The CSP-style backbone and the size table (`model.size=n|s|m|l`).

Base layout (the `l` model): stem convs to stride 4, then C2f stages ending at strides 8, 16 and 32, with SPPF on
the deepest level. Smaller sizes scale the number of bottlenecks per C2f by `depth` and the channels by `width`,
capped at `max_channels` before scaling (the same multipliers as the YOLOv8 family, so parameter counts match).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.blocks import SPPF, C2f, ConvBNAct


@dataclass(frozen=True)
class YOLOScale:
    depth: float  # multiplier of the bottleneck count of every C2f block
    width: float  # multiplier of every channel count
    max_channels: int  # channel cap applied before `width`

    def channels(self, base: int) -> int:
        # Multiples of 8 keep convolutions efficient on GPUs.
        return int(math.ceil(min(base, self.max_channels) * self.width / 8) * 8)

    def blocks(self, base: int) -> int:
        return max(round(base * self.depth), 1)


YOLO_SIZES: dict[str, YOLOScale] = {
    "n": YOLOScale(depth=0.33, width=0.25, max_channels=1024),
    "s": YOLOScale(depth=0.33, width=0.50, max_channels=1024),
    "m": YOLOScale(depth=0.67, width=0.75, max_channels=768),
    "l": YOLOScale(depth=1.00, width=1.00, max_channels=512),
}

# Channels of the stem, stride 4 and the three output levels (8, 16, 32) of the unscaled model.
BASE_CHANNELS = (64, 128, 256, 512, 1024)


def yolo_scale(size: str) -> YOLOScale:
    if size not in YOLO_SIZES:
        raise ConfigError(f"model.size={size!r} is not a YOLO size; choose one of {', '.join(YOLO_SIZES)}.")
    return YOLO_SIZES[size]


class CSPBackbone(nn.Module):
    """Returns the feature maps at strides 8, 16 and 32 (channels in `out_channels`)."""

    def __init__(self, *, scale: YOLOScale) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = (scale.channels(c) for c in BASE_CHANNELS)
        self.stem = nn.Sequential(
            ConvBNAct(c_in=3, c_out=c0, kernel=3, stride=2),
            ConvBNAct(c_in=c0, c_out=c1, kernel=3, stride=2),
            C2f(c_in=c1, c_out=c1, num_blocks=scale.blocks(3), shortcut=True),
        )
        self.stage8 = nn.Sequential(
            ConvBNAct(c_in=c1, c_out=c2, kernel=3, stride=2),
            C2f(c_in=c2, c_out=c2, num_blocks=scale.blocks(6), shortcut=True),
        )
        self.stage16 = nn.Sequential(
            ConvBNAct(c_in=c2, c_out=c3, kernel=3, stride=2),
            C2f(c_in=c3, c_out=c3, num_blocks=scale.blocks(6), shortcut=True),
        )
        self.stage32 = nn.Sequential(
            ConvBNAct(c_in=c3, c_out=c4, kernel=3, stride=2),
            C2f(c_in=c4, c_out=c4, num_blocks=scale.blocks(3), shortcut=True),
            SPPF(c_in=c4, c_out=c4),
        )
        self.out_channels = (c2, c3, c4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3 = self.stage8(self.stem(x))
        p4 = self.stage16(p3)
        p5 = self.stage32(p4)
        return p3, p4, p5
