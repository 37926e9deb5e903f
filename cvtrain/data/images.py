"""Decoding image files as they are found in real datasets.

Real trees contain grayscale and CMYK JPEGs, PNG bytes behind a `.JPEG` name, upper-case extensions and stray
non-image files. Everything decodes to a uint8 RGB tensor [3, H, W]; an unreadable file raises `BadImageError`
naming the path, which datasets turn into a `BadSample` so the main process (not a worker) decides what to do.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

# Extensions treated as images (compared lower-case); everything else in a dataset tree is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


class BadImageError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file as a uint8 RGB tensor [3, H, W], whatever its real format or colour mode."""
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
    """Decode an image file's bytes (read from `path`, named in errors) as a uint8 RGB tensor [3, H, W]."""
    try:
        # torchvision sniffs the real format from the bytes, so PNG data behind a .JPEG name decodes.
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError):
        pass  # formats torchvision does not decode (BMP, TIFF, PNM, some CMYK JPEGs) go through PIL
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImageError(path, f"not a decodable image ({e})") from e
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()
