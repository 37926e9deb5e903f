"""The HSV jitter of `aug=yolo` on uint8 images, fast: torchvision's `ColorJitter(brightness, saturation, hue)`.

The same random draws (`ColorJitter.make_params`: the order of the three adjustments, then their factors) and the
same arithmetic as torchvision's uint8 kernels, each adjustment truncating to whole values as theirs do, but in
one float32 buffer and with element-wise operations only: torchvision's hue shift (RGB -> HSV -> RGB with channel
reductions, a 6-way gather and a float -> uint8 conversion) took 25-35 ms of a 640 px sample's ~75 ms.

Brightness and saturation equal torchvision's results bit for bit; the hue shift equals them within one grey
level (float rounding; about 1 value in 10,000 differs). tests/data/transforms/test_yolo_colour.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2

# torchvision turns floats in [0, 1] into uint8 as trunc(x * (256 - 1e-3)); in 0..255 units that is this factor.
_TO_UINT8 = (255 + 1.0 - 1e-3) / 255
# HSV -> RGB as f(n) = V - V*S*clamp(min(k, 4 - k), 0, 1), k = (n + hue in sixths) mod 6, n = 5, 3, 1 for R, G, B.
_CHANNEL_OFFSET = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # ColorJitter's fn_idx numbering
TILE_PIXELS = 40_960  # 64 rows of a 640 px image


@dataclass(frozen=True)
class ColourJitter:
    """One draw of `ColorJitter`: the order of the adjustments and their factors (None: not configured)."""

    order: tuple[int, ...]
    brightness: float | None
    saturation: float | None
    hue: float | None


def draw_colour_jitter(jitter: v2.ColorJitter) -> ColourJitter:
    """Draw as `jitter` itself would (same generator calls, same order); contrast is not part of aug=yolo."""
    if jitter.contrast is not None:
        raise ValueError("aug=yolo's colour jitter has no contrast term")
    params = jitter.make_params([])
    return ColourJitter(
        order=tuple(int(i) for i in params["fn_idx"]),
        brightness=params["brightness_factor"],
        saturation=params["saturation_factor"],
        hue=params["hue_factor"],
    )


def jitter_colour_(image: torch.Tensor, jitter: ColourJitter) -> torch.Tensor:
    """Apply `jitter` to the uint8 [3, H, W] `image` (a view is fine) in place; returns `image`.

    Bands of about `TILE_PIXELS` pixels at a time: the dozen float temporaries of a band stay in the core's cache,
    where whole-image ones (5 MB each at 640 px) cost page faults and memory traffic (4x slower measured)."""
    rows = max(1, TILE_PIXELS // max(1, image.shape[-1]))
    for top in range(0, image.shape[-2], rows):
        _jitter_band_(image[:, top : top + rows], jitter)
    return image


def _jitter_band_(image: torch.Tensor, jitter: ColourJitter) -> None:
    # Whole numbers 0..255 throughout: every step truncates as the uint8 kernels do (floor: nothing is negative
    # there, and torch's floor is vectorised where its trunc is not).
    pixels = image.float()
    for step in jitter.order:
        if step == BRIGHTNESS and jitter.brightness is not None:
            pixels.mul_(jitter.brightness).clamp_(0, 255).floor_()
        elif step == SATURATION and jitter.saturation is not None:
            pixels = _saturation(pixels, jitter.saturation)
        elif step == HUE and jitter.hue is not None:
            pixels = _hue(pixels, jitter.hue)
    image.copy_(pixels.to(torch.int32))  # float -> int32 -> uint8 is several times faster than float -> uint8


def _saturation(pixels: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's `adjust_saturation` of uint8: a blend with the floored grey (ITU-R 601-2 luma)."""
    r, g, b = pixels.unbind(0)
    grey = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_()
    return pixels.mul_(factor).add_(grey, alpha=1.0 - factor).clamp_(0, 255).floor_()


def _hue(pixels: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's `adjust_hue` of uint8 (hue shifted by `factor` turns in HSV), without branches or gathers."""
    r, g, b = pixels.unbind(0)
    top = torch.maximum(torch.maximum(r, g), b)  # V
    spread = top - torch.minimum(torch.minimum(r, g), b)  # V * S
    # Which channel is the largest (red first, then green, as torchvision decides), as 0/1 floats: the values
    # are whole numbers, so clamp(top - c, 0, 1) is 0 exactly where c is the largest.
    not_red = (top - r).clamp_(0, 1)
    green = (1 - (top - g).clamp_(0, 1)).mul_(not_red)
    blue = not_red - green
    # hue in sixths of a turn: red largest (g - b) / spread, green 2 + (b - r) / spread, blue 4 + (r - g) / spread
    red_hue = g - b
    sixths = (b - r).add_(spread, alpha=2).sub_(red_hue).mul_(green)
    sixths.add_((r - g).add_(spread, alpha=4).sub_(red_hue).mul_(blue)).add_(red_hue)
    sixths.div_(spread.clamp(min=1)).add_(6 * factor + 12)  # + 12 keeps it positive for the modulo below
    k = sixths + _CHANNEL_OFFSET
    k.sub_(k.div(6).floor_().mul_(6))  # mod 6 (torch's remainder is several times slower)
    weight = k.sub_(2).abs_().neg_().add_(2).clamp_(0, 1)  # clamp(min(k, 4 - k), 0, 1)
    return torch.sub(top, weight.mul_(spread)).mul_(_TO_UINT8).floor_()
