"""The random choices of one classification sample, drawn before decoding, and the pixel steps that follow the
resize: shared by the data workers' pipeline (`transforms/pipelines.py`) and the device decoder (`device_decode.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cvtrain.data.decoding.jpeg import Box


@dataclass(frozen=True)
class CropPlan:
    """Every random choice of one classification sample, drawn from the image's size before any pixel is decoded:
    `box` of the full image is resized to `out`, then `crop` of that (a random or centre crop; None: all of it)
    is kept and flipped left-right when `flip`."""

    box: Box
    out: tuple[int, int]
    crop: Box | None
    flip: bool


def finish(pixels: torch.Tensor, plan: CropPlan) -> torch.Tensor:
    """The steps of `plan` after the resize, on uint8 [3, *out] `pixels` on any device."""
    if plan.crop is not None:
        top, left, height, width = plan.crop
        pixels = pixels[..., top : top + height, left : left + width]
    return pixels.flip(-1) if plan.flip else pixels
