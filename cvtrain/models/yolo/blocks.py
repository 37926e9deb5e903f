"""Building blocks of the CSP-style YOLO: Conv-BN-SiLU, the C2f cross-stage block and SPPF pooling."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Module):
    """Conv (no bias: BN follows) → BatchNorm → SiLU, 'same' padding for odd kernels."""

    def __init__(self, *, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
        # The YOLO family's BN settings: slower running statistics suit its small, noisy mosaic batches.
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3×3 convs with an optional residual connection (only when the shapes allow it)."""

    def __init__(self, *, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c_in=channels, c_out=channels, kernel=3)
        self.cv2 = ConvBNAct(c_in=channels, c_out=channels, kernel=3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """Cross-stage partial block with two convs: split the features, run a chain of bottlenecks on one half
    and concatenate every intermediate output, so gradients reach early layers through short paths."""

    def __init__(self, *, c_in: int, c_out: int, num_blocks: int, shortcut: bool) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.cv1 = ConvBNAct(c_in=c_in, c_out=2 * self.hidden)
        self.cv2 = ConvBNAct(c_in=(2 + num_blocks) * self.hidden, c_out=c_out)
        self.blocks = nn.ModuleList(
            Bottleneck(channels=self.hidden, shortcut=shortcut) for _ in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained 5×5 max-pools equal 5/9/13 pools, widening the
    receptive field of the deepest level at almost no cost."""

    def __init__(self, *, c_in: int, c_out: int, pool: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNAct(c_in=c_in, c_out=hidden)
        self.cv2 = ConvBNAct(c_in=4 * hidden, c_out=c_out)
        self.pool = nn.MaxPool2d(kernel_size=pool, stride=1, padding=pool // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, dim=1))
