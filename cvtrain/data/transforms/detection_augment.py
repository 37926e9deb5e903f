"""Fast uint8 versions of the two costly steps of the detection training pipeline, with torchvision's draws.

`PhotometricDistort` is `v2.RandomPhotometricDistort` (its `make_params`: the same factors, probabilities, order
and channel permutation) whose uint8 RGB image path runs on PIL's C kernels instead of float tensors:
brightness and contrast are per-channel lookup tables (`Image.point`; the contrast mean comes from the image's
histogram), saturation is PIL's blend with the grey image (`ImageEnhance.Color`), hue is a cyclic shift of the
hue channel of PIL's 8-bit HSV. Results agree with torchvision's tensor kernels to a level or two (hue: mean
under one level, up to ~10 on saturated noise, where PIL's 8-bit HSV and the shift's 1/255 turn step round);
see tests/data/transforms/test_detection_augment.py. Other inputs (float images, videos) take torchvision's path.

`RandomScale` is `v2.RandomAffine(degrees=0, scale=...)` (the same draws) whose pure-scale path resizes the image
(antialiased bilinear on uint8) to round(size * scale) and centres it on the same canvas, cropping (zoom in) or
padding with the fill colour (zoom out), instead of sampling a grid for every output pixel. Boxes and masks get
the same resize and crop (`F.resize` + `F.crop`, which clamps boxes and pads masks with 0), so they follow the
pixels exactly; the integer centring offset moves content by at most half a pixel against the affine's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode, RandomAffine, RandomPhotometricDistort
from torchvision.transforms.v2 import functional as F


def _is_uint8_rgb(inpt: Any) -> bool:
    plain = type(inpt) is torch.Tensor or isinstance(inpt, tv_tensors.Image)
    return plain and inpt.dtype == torch.uint8 and inpt.ndim == 3 and inpt.shape[0] == 3


def _channel_means(image: Image.Image) -> list[float]:
    """Mean of each channel, from the 3 x 256 histogram (one C pass)."""
    counts = np.asarray(image.histogram(), dtype=np.float64).reshape(3, 256)
    return list(counts @ np.arange(256.0) / counts[0].sum())


def _blend_lut(factor: float, other: float) -> list[int]:
    """torchvision's uint8 blend with a constant: clamp(v * factor + other * (1 - factor)) truncated."""
    values = np.clip(np.arange(256.0) * factor + other * (1.0 - factor), 0, 255).astype(np.uint8)
    return values.tolist()


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    return image.point(_blend_lut(factor, 0.0) * 3)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    red, green, blue = _channel_means(image)
    mean = 0.2989 * red + 0.587 * green + 0.114 * blue  # the mean of torchvision's grey image
    return image.point(_blend_lut(factor, mean) * 3)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(image).enhance(factor)  # blend with image.convert("L"), clamped


def adjust_hue(image: Image.Image, factor: float) -> Image.Image:
    """Rotate the hue by `factor` turns (in [-0.5, 0.5]): PIL's 8-bit HSV has 255 hue steps a turn, so the shift
    is rounded to a step (1.4 degrees; torchvision's range of +-0.05 turn is +-13 steps)."""
    hue, saturation, value = image.convert("HSV").split()
    shift = round(factor * 255)
    hue = hue.point([(h + shift) % 255 for h in range(256)])
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


class PhotometricDistort(RandomPhotometricDistort):
    """`RandomPhotometricDistort` (same parameters and draws) with PIL kernels for uint8 RGB images."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not _is_uint8_rgb(inpt):
            return super().transform(inpt, params)
        steps = [
            (adjust_brightness, params["brightness_factor"]),
            (adjust_contrast, params["contrast_factor"] if params["contrast_before"] else None),
            (adjust_saturation, params["saturation_factor"]),
            (adjust_hue, params["hue_factor"]),
            (adjust_contrast, None if params["contrast_before"] else params["contrast_factor"]),
        ]
        steps = [(kernel, factor) for kernel, factor in steps if factor is not None]
        out = inpt.as_subclass(torch.Tensor)
        if steps:
            pil = to_pil(out)
            for kernel, factor in steps:
                pil = kernel(pil, factor)
            out = from_pil(pil)
        if params["channel_permutation"] is not None:
            out = out[params["channel_permutation"]]
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out


def crop_window(size: int, scaled: int) -> tuple[int, int, int, int]:
    """(source start, destination start, length, crop offset) centring `scaled` pixels on `size`."""
    offset = round((scaled - size) / 2)  # negative: the content is smaller, padded
    source, destination = max(offset, 0), max(-offset, 0)
    return source, destination, min(scaled - source, size - destination), offset


class RandomScale(RandomAffine):
    """`RandomAffine(degrees=0, scale=scale)` (same draws) as a resize and a centred crop or pad."""

    def __init__(self, scale: tuple[float, float], fill: list[int]) -> None:
        super().__init__(
            degrees=0.0,
            scale=scale,
            interpolation=InterpolationMode.BILINEAR,
            fill={tv_tensors.Image: fill, "others": 0},
        )
        self.canvas_fill = torch.tensor(fill, dtype=torch.uint8)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        pure_scale = params["angle"] == 0 and not any(params["translate"]) and not any(params["shear"])
        scalable = _is_uint8_rgb(inpt) or isinstance(inpt, (tv_tensors.BoundingBoxes, tv_tensors.Mask))
        if not (pure_scale and scalable):
            return super().transform(inpt, params)
        height, width = F.get_size(inpt)
        size = [max(1, round(height * params["scale"])), max(1, round(width * params["scale"]))]
        (sy, dy, ly, top), (sx, dx, lx, left) = crop_window(height, size[0]), crop_window(width, size[1])
        if not _is_uint8_rgb(inpt):  # boxes (clamped to the canvas) and masks (padded with 0)
            return F.crop(F.resize(inpt, size), top, left, height, width)
        resized = F.resize_image(inpt.as_subclass(torch.Tensor), size, antialias=True)
        canvas = self.canvas_fill.view(3, 1, 1).expand(3, height, width).clone()
        canvas[:, dy : dy + ly, dx : dx + lx] = resized[:, sy : sy + ly, sx : sx + lx]
        return tv_tensors.wrap(canvas, like=inpt) if isinstance(inpt, tv_tensors.Image) else canvas
