"""What the tasks' `preview` methods share: the picture of an evaluated image, at the size predictions.png shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.plots.draw import fit_to

PREVIEW_SIDE = 256  # pixels, the longer side of each picture in predictions.png


def source_image(meta: dict[str, Any], tensor: torch.Tensor) -> np.ndarray:
    """The image as the user knows it (uint8 RGB [H, W, 3]): its file when it can be read, else the model's input
    stretched to 0..255 (in-memory data such as `data=synthetic`)."""
    try:
        return read_image(meta["path"]).permute(1, 2, 0).numpy()
    except (BadImageError, KeyError):
        pixels = tensor.detach().float().cpu()
        low, high = pixels.min(), pixels.max()
        pixels = (pixels - low) / (high - low).clamp(min=1e-12) * 255
        return pixels.round().to(torch.uint8).permute(1, 2, 0).numpy()


def preview_canvas(
    meta: dict[str, Any], tensor: torch.Tensor, side: int = PREVIEW_SIDE
) -> tuple[np.ndarray, float]:
    """`source_image` scaled to `side` pixels on its longer side, and the scale from original pixels."""
    return fit_to(source_image(meta, tensor), side)


class PictureNames:
    """`cvtrain predict`'s picture of each input: `folder/<stem>.png`, numbered when two inputs share a stem (the
    same name in two sub-folders), so that no picture overwrites another."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._used: set[str] = set()

    def __call__(self, source: Path) -> Path:
        name, n = source.stem, 1
        while name in self._used:
            name, n = f"{source.stem}_{n}", n + 1
        self._used.add(name)
        return self.folder / f"{name}.png"
