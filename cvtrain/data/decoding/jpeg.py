"""Decode no more of a JPEG than a crop needs: libjpeg-turbo's DCT scaling (through simplejpeg).

A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size for less work than a full decode (the inverse DCT then
produces fewer pixels per 8x8 block). The box a transform wants is chosen first from the header's size, then the
file is decoded at the smallest of those scales at which the box still has at least the output's pixels, and the
box is cropped and resized (antialiased) to the output. Only powers of two are used: libjpeg-turbo's 3/8, 5/8, 6/8
and 7/8 scales have no SIMD kernels and measured slower than a full decode here (scripts/bench_pipeline.py).

When the optional C extension `cvtrain._jpeg_region` was built (setup.py; it needs a compiler and libjpeg's
headers), only the part of the file that covers the box is decoded, at that scale: rows above the box are
entropy-decoded only, rows below are not read, and only the columns around the box go through the inverse DCT
(cvtrain/_jpeg_region.c). Its pixels equal those of the whole decode at the same scale, cut to the box (tested bit
for bit, 4:4:4, 4:2:2, 4:2:0, grey, progressive). Without the extension the whole file is decoded by simplejpeg.

Only JPEGs that libjpeg-turbo converts to RGB itself (YCbCr, RGB and grayscale) and that are stored as displayed
take this path; `jpeg_size` says None for anything else (CMYK, a photo stored sideways or mirrored with an EXIF
orientation, PNG bytes behind a .JPEG name, not an image), which goes through `cvtrain.data.decoding.images.decode_bytes`:
decoded whole and turned upright there.
"""

from __future__ import annotations

import math

import simplejpeg
import torch

from cvtrain.data.decoding.images import exif_orientation

try:
    from cvtrain._jpeg_region import decode_region
except ImportError:  # built without a compiler or libjpeg's headers: whole decodes through simplejpeg
    decode_region = None

# Box = (top, left, height, width) in the full image's pixels; sizes are (height, width).
Box = tuple[int, int, int, int]
SCALES = (8, 4, 2)  # divisors tried, largest first
DECODED_COLOURSPACES = frozenset({"YCbCr", "RGB", "Gray"})
# A JPEG ends with the EOI marker. A region decode stops after the box's last row, so it would not notice a file
# cut short below the box; files without EOI are decoded whole, by simplejpeg, which refuses truncated data.
EOI = b"\xff\xd9"
# The EXIF block's header inside its APP1 segment: a JPEG without these bytes has no EXIF orientation.
EXIF_HEADER = b"Exif\x00\x00"


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the header of a JPEG that `decode_crop` handles, else None."""
    if data[:2] != b"\xff\xd8":  # every JPEG starts with the SOI marker
        return None
    # A box drawn on the displayed picture is not the stored pixels' box when EXIF turns them: such files decline.
    if EXIF_HEADER in data and exif_orientation(data) != 1:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (height, width) if colourspace in DECODED_COLOURSPACES else None


def scale_divisor(box: Box, out: tuple[int, int]) -> int:
    """The largest of 8, 4, 2 (else 1) by which the box can shrink and still cover `out` in both directions."""
    _, _, height, width = box
    return next((d for d in SCALES if height >= d * out[0] and width >= d * out[1]), 1)


def scaled_box(box: Box, size: tuple[int, int], scaled: tuple[int, int]) -> Box:
    """`box` of an image of `size` in the pixels of its `scaled` decode, rounded to whole pixels there: a shift of
    at most half a scaled pixel (divisor / 2 original pixels), well inside the randomness of a random crop."""
    fy, fx = scaled[0] / size[0], scaled[1] / size[1]
    top, left, height, width = box
    y0, x0 = round(top * fy), round(left * fx)
    return y0, x0, round((top + height) * fy) - y0, round((left + width) * fx) - x0


def resize_box(image: torch.Tensor, box: Box, out: tuple[int, int]) -> torch.Tensor:
    """uint8 [3, out_h, out_w]: `box` of the uint8 [3, H, W] `image` resized to `out`, bilinear and antialiased,
    equal to torchvision's `resized_crop(image, *box, size=out, antialias=True)` for a box inside the image.

    The box is first copied into a channels-last batch of one: torch's SIMD uint8 kernel works on that layout
    directly, where a strided view of a larger image is resized through slower paths (0.19 against 0.32 ms for
    a 300x400 box of a 640x480 photo, 0.82 against 0.96 ms from a channels-first image; scripts/bench_pipeline.py
    shows the whole pipeline)."""
    top, left, height, width = box
    crop = image[None, :, top : top + height, left : left + width].contiguous(
        memory_format=torch.channels_last
    )
    resized = torch.nn.functional.interpolate(
        crop, size=out, mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0]


def decode_crop(data: bytes, size: tuple[int, int], box: Box, out: tuple[int, int]) -> torch.Tensor:
    """uint8 [3, out_h, out_w]: `box` of the JPEG `data` (whose size is `size`) resized to `out`, antialiased.

    Raises ValueError for data libjpeg-turbo cannot decode cleanly (truncated or corrupt files; its warnings count
    as errors, as in simplejpeg's strict mode). A region decode reads the file only down to the box's last row, so
    corrupt entropy-coded data below the box goes unnoticed there (a missing end of file does not: see `EOI`)."""
    divisor = scale_divisor(box, out)
    # libjpeg-turbo's scaled size is ceil(size / divisor); asking for at least that picks exactly 1 / divisor.
    scaled = (math.ceil(size[0] / divisor), math.ceil(size[1] / divisor))
    if divisor > 1:
        box = scaled_box(box, size, scaled)
    if decode_region is not None and data.endswith(EOI):
        _, _, height, width = box
        pixels = decode_region(data, divisor, *box)  # the box alone, HWC: resize_box copies nothing more
        image = torch.frombuffer(pixels, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)
        return resize_box(image, (0, 0, height, width), out)
    array = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=scaled[0], min_width=scaled[1])
    image = torch.from_numpy(array).permute(2, 0, 1)  # a [3, H, W] view of the HWC buffer, no copy
    return resize_box(image, box, out)
