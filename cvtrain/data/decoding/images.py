"""Decoding image files as they are found in real datasets.

Real trees contain grayscale, CMYK and 16-bit images, phone photos stored sideways with an EXIF orientation, PNG
bytes behind a `.JPEG` name, upper-case extensions and stray non-image files. Everything decodes to the picture as
displayed (EXIF orientation applied, as PIL's `ImageOps.exif_transpose` and torchvision's
`decode_image(apply_exif_orientation=True)` do) in a uint8 RGB tensor [3, H, W]; an unreadable file raises
`BadImageError` naming the path, which datasets turn into a `BadSample` so the main process (not a worker) decides
what to do.

16-bit samples keep their high byte (`>> 8`): what torchvision's `to_dtype(..., scale=True)` does to a uint16
image and what Pillow itself does when it reads a 16-bit colour PNG, so a 16-bit file gives the same picture as
its 8-bit export. (Pillow's own `convert` of 16-bit grayscale clips at 255 instead, a white image.)
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.TiffImagePlugin import IMAGELENGTH, IMAGEWIDTH
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2.functional import to_dtype

# Extensions treated as images (compared lower-case); everything else in a dataset tree is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
# The formats torchvision decodes with their EXIF orientation (it ignores a WebP's): the rest go through PIL.
TORCHVISION_SIGNATURES = (b"\xff\xd8", b"\x89PNG\r\n\x1a\n")  # JPEG's SOI marker, PNG's signature
EXIF_ORIENTATION = 0x0112  # the EXIF tag: 1 = stored as displayed; 2..8 = flipped and/or rotated
TRANSPOSING = frozenset({5, 6, 7, 8})  # the orientations that swap width and height
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})  # Pillow's modes of 16-bit grayscale


class BadImageError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a uint8 RGB tensor [3, H, W] as displayed, whatever its format, mode or orientation."""
    return decode_bytes(read_bytes(path), path)


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; a missing, unreadable or empty file raises `BadImageError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadImageError(path, e.strerror or str(e)) from e
    if not data:
        raise BadImageError(path, "the file is empty (0 bytes)")
    return data


def decode_bytes(data: bytes, path: str | Path) -> torch.Tensor:
    """Decode an image file's bytes (read from `path`, named in errors) as a uint8 RGB tensor [3, H, W], with its
    EXIF orientation applied."""
    if data.startswith(TORCHVISION_SIGNATURES):
        try:
            # torchvision sniffs the real format from the bytes, so PNG data behind a .JPEG name decodes.
            image = decode_image(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=True,
            )
        except (RuntimeError, ValueError):
            pass  # some CMYK JPEGs and PNGs libpng refuses: PIL decides
        else:
            return image if image.dtype == torch.uint8 else to_dtype(image, torch.uint8, scale=True)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if _orientation(im) != 1:  # a corrupt EXIF block counts as none, as torchvision takes it
                ImageOps.exif_transpose(im, in_place=True)
            pixels = _rgb_array(im, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as e:  # struct: bad EXIF
        raise BadImageError(path, f"not a decodable image ({e})") from e
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def _rgb_array(im: Image.Image, path: str | Path) -> np.ndarray:
    """A decoded PIL image as uint8 RGB [H, W, 3]; 16-bit grayscale keeps its high byte (module docstring)."""
    if im.mode in SIXTEEN_BIT_MODES:
        samples = np.asarray(im)
        if (
            samples.min() < 0 or samples.max() > 0xFFFF
        ):  # "I" also holds 32-bit data, which has no 8-bit scale
            raise BadImageError(
                path, f"32-bit integer pixels ({samples.min()}..{samples.max()}): save it as 8 bits"
            )
        grey = (samples >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        raise BadImageError(
            path, "floating-point pixels (mode F) have no 8-bit scale: save it as 8 or 16 bits"
        )
    return np.array(im.convert("RGB"))


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation of an image file's bytes (1 when it has none or it cannot be read), from the header."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return _orientation(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return 1


def displayed_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the image as displayed (its EXIF orientation applied), from its header only; raises
    PIL's errors (OSError, ...) for an unreadable file."""
    with Image.open(path) as im:
        orientation = _orientation(im)
        # The stored size: recent Pillows report a TIFF's size as displayed already (and turn it when loading).
        stored = (im.tag_v2[IMAGEWIDTH], im.tag_v2[IMAGELENGTH]) if im.format == "TIFF" else im.size
    return (stored[1], stored[0]) if orientation in TRANSPOSING else stored


def _orientation(im: Image.Image) -> int:
    """The orientation tag of an opened image; 1 when it has none or its EXIF block is corrupt."""
    try:
        value = im.getexif().get(EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except (SyntaxError, ValueError, TypeError, OSError, struct.error):
        return 1
