"""`cvtrain predict inputs=...`: an image file or a folder of images, with the task's evaluation transform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import tv_tensors

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.images import BadImageError, is_image_file, read_image
from cvtrain.data.transforms.pipelines import ClassificationTransform
from cvtrain.errors import ConfigError


def list_images(inputs: str | Path) -> list[Path]:
    path = Path(inputs).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        if files:
            return files
        raise ConfigError(f"inputs={inputs}: the folder has no image files.")
    raise ConfigError(f"inputs={inputs} is neither an image file nor a folder.")


class InputImages(Dataset):
    """Samples `(image, -1, meta)`: no label; the task's collate and prediction sink know -1 means none."""

    def __init__(self, inputs: str | Path, *, transform: Callable | None):
        self.paths = list_images(inputs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, Any, dict[str, Any]] | BadSample:
        path = self.paths[index]
        if isinstance(self.transform, ClassificationTransform):  # decoded as in evaluation (DCT-scaled JPEGs)
            try:
                return self.transform.read(path), -1, {"path": str(path), "image_id": path.stem}
            except BadImageError as e:
                return BadSample(path=e.path, reason=e.reason)
        try:
            image = tv_tensors.Image(read_image(path))
        except BadImageError as e:
            return BadSample(path=e.path, reason=e.reason)
        meta = {"path": str(path), "image_id": path.stem, "orig_size": tuple(image.shape[-2:])}
        if self.transform is not None:
            image = self.transform(image)
        return image, -1, meta
