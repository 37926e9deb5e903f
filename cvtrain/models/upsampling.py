"""In-network upsampling layers, as the lectures draw them.

Fixed (no parameters): `nearest` (each value repeated over its s×s block), `bilinear` (interpolation),
`bed_of_nails` (each value in the top-left of its s×s block, zeros elsewhere), `max_unpool` (each value back at
the argmax position its matching `MaxPool2d(..., return_indices=True)` recorded). Learnable: `transposed`
(`ConvTranspose2d` initialised to bilinear interpolation, as FCN does).

Every layer has the same call, `layer(x, indices=None)`, so a decoder can treat the modes alike; only
`max_unpool` uses `indices` (and requires them).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cvtrain.errors import ConfigError

UpsampleMode = Literal["nearest", "bilinear", "bed_of_nails", "max_unpool", "transposed"]
UPSAMPLE_MODES: tuple[str, ...] = get_args(UpsampleMode)


class Upsample(nn.Module):
    """Base class: scale H and W by an integer `factor`."""

    def __init__(self, *, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"upsampling factor must be a positive integer, got {factor}")
        self.factor = factor

    def forward(self, x: Tensor, indices: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class NearestUpsample(Upsample):
    def forward(self, x: Tensor, indices: Tensor | None = None) -> Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="nearest")


class BilinearUpsample(Upsample):
    def __init__(self, *, factor: int, align_corners: bool = False) -> None:
        super().__init__(factor=factor)
        self.align_corners = align_corners

    def forward(self, x: Tensor, indices: Tensor | None = None) -> Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=self.align_corners)


class BedOfNailsUpsample(Upsample):
    def forward(self, x: Tensor, indices: Tensor | None = None) -> Tensor:
        batch, channels, height, width = x.shape
        s = self.factor
        out = x.new_zeros(batch, channels, height * s, width * s)
        out[:, :, ::s, ::s] = x
        return out


class MaxUnpoolUpsample(Upsample):
    """Inverse of `MaxPool2d(factor, factor, return_indices=True)`: needs that pool's indices."""

    def __init__(self, *, factor: int) -> None:
        super().__init__(factor=factor)
        self.unpool = nn.MaxUnpool2d(kernel_size=factor, stride=factor)

    def forward(
        self, x: Tensor, indices: Tensor | None = None, output_size: list[int] | None = None
    ) -> Tensor:
        if indices is None:
            raise ValueError("max_unpool upsampling needs the argmax indices of the matching max-pool layer")
        return self.unpool(x, indices, output_size=output_size)


def bilinear_kernel(size: int) -> Tensor:
    """The 2-D bilinear interpolation kernel of FCN's `upsample_filt` (size 2f - f % 2 for factor f)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float64) - center).abs() / factor
    return torch.outer(ramp, ramp).float()


class TransposedUpsample(Upsample):
    """Learnable `ConvTranspose2d` (stride f, kernel 2f - f % 2) whose output is exactly f× the input size.

    Initialised as FCN does: each channel maps to itself through a bilinear kernel, so the layer starts as
    bilinear interpolation (away from the border) and learns from there.
    """

    def __init__(self, *, channels: int, factor: int, bias: bool = False) -> None:
        super().__init__(factor=factor)
        kernel_size = 2 * factor - factor % 2
        padding = factor // 2  # with this kernel size the output is exactly f * input
        self.conv = nn.ConvTranspose2d(
            channels, channels, kernel_size=kernel_size, stride=factor, padding=padding, bias=bias
        )
        with torch.no_grad():
            self.conv.weight.zero_()
            kernel = bilinear_kernel(kernel_size)
            for c in range(channels):
                self.conv.weight[c, c] = kernel
            if self.conv.bias is not None:
                self.conv.bias.zero_()

    def forward(self, x: Tensor, indices: Tensor | None = None) -> Tensor:
        return self.conv(x)


def make_upsample(mode: str, channels: int, factor: int) -> Upsample:
    """The upsampling layer for `mode` (one of UPSAMPLE_MODES) scaling by `factor` on `channels` channels."""
    if mode == "nearest":
        return NearestUpsample(factor=factor)
    if mode == "bilinear":
        return BilinearUpsample(factor=factor)
    if mode == "bed_of_nails":
        return BedOfNailsUpsample(factor=factor)
    if mode == "max_unpool":
        return MaxUnpoolUpsample(factor=factor)
    if mode == "transposed":
        return TransposedUpsample(channels=channels, factor=factor)
    raise ConfigError(
        f"unknown upsampling mode {mode!r} (key model.upsample); choose one of {UPSAMPLE_MODES}"
    )
