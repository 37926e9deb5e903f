"""The `aug=yolo` training transform in one pass: letterbox, HSV jitter, random scale/translate, flips, sanitize.

It does what the chain `LetterBox(pad) -> ColorJitter -> RandomAffine -> RandomHorizontalFlip ->
RandomVerticalFlip -> SanitizeBoundingBoxes` (`yolo_reference_transforms`) does, with the same random draws in the
same order, but with one interpolation instead of two and no float image. Without rotation or shear, letterbox
and affine together map each axis linearly (x -> a x + b), so the part of the input that stays in view is cropped
and resized once (antialiased, uint8, channels-last: torch's SIMD kernel) straight into the grey output; the chain
resized the 2S mosaic canvas to S and then bilinearly resampled the whole S x S image through a float grid.

The colour jitter (`yolo_colour.py`) runs after the resize on the pixels the chain would have jittered: the
letterboxed square (image and letterbox padding) as it lands in the output; the affine's own border stays 114.
Jitter and flips are point-wise, so they commute with the resampling up to rounding at the image's edges.

Integer pixel bounds: the in-view crop of the input and its place in the output are rounded to whole pixels, so
the scale and shift actually applied differ from the drawn ones by under a pixel at the edges; boxes follow the
applied mapping, not the drawn one, so they stay on their objects' pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvtrain.data.decoding.jpeg import resize_box
from cvtrain.data.transforms.yolo_colour import draw_colour_jitter, jitter_colour_

PAD_VALUE = 114  # as yolo_transforms.PAD_VALUE (that module imports this one)


@dataclass(frozen=True)
class Span:
    """One axis of the warp: input pixels [src0, src1) are resized to [dst0, dst1) of the output, of which the part
    [out0, out1) is in view."""

    src0: int
    src1: int
    dst0: int
    dst1: int
    out0: int
    out1: int

    def map(self, coords: torch.Tensor) -> torch.Tensor:
        """Input coordinates (continuous pixels) -> output ones, clamped to the part that is in view."""
        ratio = (self.dst1 - self.dst0) / (self.src1 - self.src0)
        return ((coords - self.src0) * ratio + self.dst0).clamp_(self.out0, self.out1)


def span(length: int, a: float, b: float, size: int) -> Span | None:
    """Where the input axis [0, length] lands under x -> a x + b (a > 0) within the output [0, size], in whole
    pixels (None: nothing of it is in view). The input is cut at whole pixels just outside the view and its ends
    placed at the nearest output pixel, so the applied scale and shift are the drawn ones within half a pixel."""
    src0 = max(0, math.floor(-b / a))
    src1 = min(length, math.ceil((size - b) / a))
    if src1 <= src0:
        return None
    dst0, dst1 = round(a * src0 + b), round(a * src1 + b)
    out0, out1 = max(dst0, 0), min(dst1, size)
    return Span(src0, src1, dst0, dst1, out0, out1) if out1 > out0 else None


def region(lo: float, hi: float, size: int) -> tuple[int, int]:
    """The whole-pixel part of the output [0, size] that [lo, hi] covers (possibly empty)."""
    return min(max(round(lo), 0), size), min(max(round(hi), 0), size)


class YoloTrainTransform:
    """`transform(image, target)` for uint8 [3, H, W] images and XYXY boxes; see the module docstring.

    `jitter` and `affine` are the torchvision transforms the reference chain would run (or None); only their
    `make_params` is used here, so the draws and their validation are torchvision's."""

    def __init__(
        self,
        *,
        size: int,
        jitter: v2.ColorJitter | None,
        affine: v2.RandomAffine | None,
        hflip: float,
        vflip: float,
        fallback: Any,
    ) -> None:
        self.size = size
        self.jitter = jitter
        self.affine = affine
        self.hflip = hflip
        self.vflip = vflip
        # the reference chain: targets with masks (none of aug=yolo's datasets) go there
        self.fallback = fallback
        self.sanitize = v2.SanitizeBoundingBoxes()

    def __call__(
        self, image: torch.Tensor, target: dict[str, Any]
    ) -> tuple[tv_tensors.Image, dict[str, Any]]:
        if any(isinstance(v, tv_tensors.Mask) for v in target.values()):
            return self.fallback(image, target)
        size = self.size
        # The reference chain's draws, in its order: colour jitter, affine, horizontal then vertical flip.
        colour = draw_colour_jitter(self.jitter) if self.jitter is not None else None
        scale, (tx, ty) = 1.0, (0, 0)
        if self.affine is not None:
            canvas = tv_tensors.BoundingBoxes(torch.empty(0, 4), format="XYXY", canvas_size=(size, size))
            params = self.affine.make_params([canvas])
            scale, (tx, ty) = float(params["scale"]), params["translate"]
        hflip = self.hflip > 0 and bool(torch.rand(1) < self.hflip)
        vflip = self.vflip > 0 and bool(torch.rand(1) < self.vflip)

        pixels = image.as_subclass(torch.Tensor)
        height, width = int(pixels.shape[-2]), int(pixels.shape[-1])
        ratio = size / max(height, width)
        new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
        top, left = (size - new_h) // 2, (size - new_w) // 2
        centre = size / 2

        def place(coord: float, shift: int) -> float:  # letterboxed coordinate -> output (the affine)
            return scale * (coord - centre) + centre + shift

        x_span = span(width, scale * new_w / width, place(left, tx), size)
        y_span = span(height, scale * new_h / height, place(top, ty), size)
        out = torch.full((3, size, size), PAD_VALUE, dtype=torch.uint8)
        if x_span is not None and y_span is not None:
            box = (y_span.src0, x_span.src0, y_span.src1 - y_span.src0, x_span.src1 - x_span.src0)
            resized = (y_span.dst1 - y_span.dst0, x_span.dst1 - x_span.dst0)
            if resized == box[2:]:
                patch = pixels[:, box[0] : box[0] + box[2], box[1] : box[1] + box[3]]
            else:
                patch = resize_box(pixels, box, resized)
            skip_y, skip_x = y_span.out0 - y_span.dst0, x_span.out0 - x_span.dst0  # the part of it in view
            out[:, y_span.out0 : y_span.out1, x_span.out0 : x_span.out1] = patch[
                :, skip_y : skip_y + y_span.out1 - y_span.out0, skip_x : skip_x + x_span.out1 - x_span.out0
            ]
        if colour is not None:
            (x0, x1), (y0, y1) = (
                region(place(0, tx), place(size, tx), size),
                region(place(0, ty), place(size, ty), size),
            )
            if x1 > x0 and y1 > y0:
                jitter_colour_(out[:, y0:y1, x0:x1], colour)
        boxes = self._boxes(target["boxes"], x_span, y_span, hflip, vflip)
        if hflip:
            out = out.flip(-1)
        if vflip:
            out = out.flip(-2)
        return self.sanitize(tv_tensors.Image(out), {**target, "boxes": boxes})

    def _boxes(
        self, boxes: torch.Tensor, x_span: Span | None, y_span: Span | None, hflip: bool, vflip: bool
    ) -> tv_tensors.BoundingBoxes:
        size = self.size
        if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
            raise ValueError(f"aug=yolo expects XYXY boxes from the dataset, got {boxes.format}")
        coords = boxes.as_subclass(torch.Tensor).float().reshape(-1, 4)
        if x_span is None or y_span is None:
            coords = coords.new_zeros(coords.shape)  # nothing in view: every box degenerate, dropped
        else:
            coords = torch.stack(
                [
                    x_span.map(coords[:, 0]),
                    y_span.map(coords[:, 1]),
                    x_span.map(coords[:, 2]),
                    y_span.map(coords[:, 3]),
                ],
                dim=1,
            )
        if hflip:
            coords = torch.stack(
                [size - coords[:, 2], coords[:, 1], size - coords[:, 0], coords[:, 3]], dim=1
            )
        if vflip:
            coords = torch.stack(
                [coords[:, 0], size - coords[:, 3], coords[:, 2], size - coords[:, 1]], dim=1
            )
        return tv_tensors.BoundingBoxes(coords, format="XYXY", canvas_size=(size, size))
