"""Segmentation masks stored as index PNGs, the way Pascal VOC ships them.

A VOC `SegmentationClass` PNG is a palette ("P" mode) image: each pixel *value* is a class index (0..20, 255 =
void) and the palette only says how to display it. Reading must therefore keep the indices (`np.array` of the
"P" image), never convert to RGB. SBD's `SegmentationClassAug` PNGs store the same indices as grayscale ("L").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cvtrain.errors import DataError
from cvtrain.files import atomic_write

IGNORE_INDEX = 255  # VOC's "void": object borders and unlabelled pixels, excluded from loss and metrics

# Modes whose pixel values are the indices themselves ("1" = bilevel, values 0/1).
_INDEX_MODES = frozenset({"P", "L", "1"})


def voc_colormap(num_colours: int = 256) -> np.ndarray:
    """The Pascal VOC colour map [num_colours, 3] uint8 (the devkit's `VOClabelcolormap.m`).

    Index i's colour spreads the bits of i over the high bits of R, G and B: 1 → (128, 0, 0), 255 → (224, 224, 192).
    """
    colours = np.zeros((num_colours, 3), dtype=np.uint8)
    for index in range(num_colours):
        r = g = b = 0
        code = index
        for bit in range(8):
            r |= ((code >> 0) & 1) << (7 - bit)
            g |= ((code >> 1) & 1) << (7 - bit)
            b |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        colours[index] = (r, g, b)
    return colours


VOC_PALETTE: np.ndarray = voc_colormap()


def read_index_png(path: str | Path) -> np.ndarray:
    """Read a class-index PNG as a uint8 array [H, W] of indices (255 kept as 255).

    Raises `DataError` naming the file if it is unreadable or stores colours (RGB) instead of indices.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode not in _INDEX_MODES:
                raise DataError(
                    f"{path}: mask PNG has mode {mode!r}; expected class indices in a palette ('P') or grayscale "
                    "('L') PNG. A colour (RGB) mask cannot be read as labels: save the class indices instead "
                    "(cvtrain.data.decoding.palette.write_index_png)."
                )
            # np.array of a "P" image yields palette indices, not colours; "1" yields bools.
            return np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot read mask PNG ({e}); re-extract or regenerate this file") from e


def write_index_png(path: str | Path, mask: np.ndarray, palette: np.ndarray = VOC_PALETTE) -> Path:
    """Write `mask` (integer [H, W], values 0..255) as a palette PNG, atomically (`cvtrain.files.atomic_write`):
    a concurrent reader (another DataLoader worker) sees either no file or the whole file."""
    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D [H, W], got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(
            f"mask values must lie in 0..255 to fit a palette PNG, got {mask.min()}..{mask.max()}"
        )
    image = Image.fromarray(mask.astype(np.uint8))  # "L"; putpalette turns it into "P" keeping the values
    image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    with atomic_write(path) as f:
        image.save(f, format="PNG")
    return path


def colorize(mask: np.ndarray, palette: np.ndarray = VOC_PALETTE) -> np.ndarray:
    """Colours for display: an index mask [H, W] → uint8 RGB [H, W, 3] through `palette`."""
    return np.asarray(palette, dtype=np.uint8)[np.asarray(mask).astype(np.intp)]
