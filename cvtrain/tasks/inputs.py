"""What the model takes: the data pipelines deliver uint8 images, and the task turns them into floats on the device
the batch has moved to (the GPU in training), so data workers and the host-to-device copy carry a quarter of the
bytes and no worker spends time on float conversion. AlexNet's PCA colour noise (`aug.lighting`) is added here
too, in training, on the floats, before the mean is subtracted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms.v2 import functional as F

from cvtrain.errors import ConfigError

# The principal components of ImageNet's RGB pixels (in [0, 1]) that AlexNet's "lighting" noise follows, as
# fb.resnet.torch's datasets/imagenet.lua has them: eigenvalues, and eigenvectors as columns.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class ImageInput:
    """uint8 images (a batch [B, 3, H, W], one [3, H, W], or a list of them) -> float32 in [0, 1] (`F.to_dtype`
    with scale, as `v2.ToDtype(torch.float32, scale=True)`); in training plus the lighting noise; then minus
    `mean` and divided by `std` per channel, as `v2.Normalize`, when given (classifiers, segmenters: `aug.mean`,
    `aug.std`), or minus `mean_image` ([3, S, S] in [0, 1]) and divided by `std`. Detectors normalise inside and
    take [0, 1]."""

    def __init__(
        self,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        mean_image: torch.Tensor | None = None,
        lighting: float = 0.0,
    ):
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if lighting < 0:
            raise ConfigError(f"aug.lighting={lighting} must be >= 0 (AlexNet used 0.1)")
        for key, values in (("aug.mean", mean), ("aug.std", std)):
            if values is not None and len(values) not in (1, 3):
                raise ConfigError(
                    f"{key}={list(values)}: give one value per RGB channel (3), or one for all."
                )
        if std is not None and not all(std):
            raise ConfigError(
                f"aug.std={list(std)}: every value must be non-zero (the inputs are divided by it)."
            )
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.mean_image = mean_image
        self.lighting = float(lighting)
        self._on_device: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    @classmethod
    def normalized(cls, aug: Any, mean_image: torch.Tensor | None = None) -> ImageInput:
        """Normalised by the `aug` group's per-channel mean (or `mean_image`) and std, with its lighting noise."""
        return cls(mean=list(aug.mean), std=list(aug.std), mean_image=mean_image, lighting=aug.lighting)

    def __call__(self, images: Any, *, train: bool = False) -> Any:
        """`train`: add the lighting noise (evaluation and `cvtrain predict` never do)."""
        if isinstance(images, list | tuple):
            return [self(image, train=train) for image in images]
        if images.dtype != torch.uint8:
            raise TypeError(
                f"model inputs must come as uint8 images from the data pipeline (the task converts them on the "
                f"device), got {images.dtype}"
            )
        floats = F.to_dtype(images, torch.float32, scale=True)
        if train and self.lighting > 0:
            floats = floats + self._lighting_noise(floats)
        if self.mean is None:
            return floats
        mean, std = self._constants(floats.device)[1:]
        if self.mean_image is not None and floats.shape[-3:] != mean.shape:
            raise ConfigError(
                f"the mean image is {tuple(mean.shape)} but the model input is {tuple(floats.shape[-3:])}: "
                "aug.image_size must be the size the mean image was computed at"
            )
        # What `F.normalize(floats, mean, std, inplace=True)` does, with the constants already on the device:
        # it would copy the two lists there at every call, and that copy waits for the GPU to finish the queue.
        return floats.sub_(mean).div_(std)

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(eigenvectors scaled by their eigenvalues, the mean (per channel [3, 1, 1], or the mean image), the std
        [3, 1, 1]) on `device`, copied once."""
        if device not in self._on_device:
            eig = torch.tensor(IMAGENET_EIGVEC) * torch.tensor(IMAGENET_EIGVAL)  # column j times eigenvalue j
            if self.mean_image is not None:
                mean = self.mean_image
            else:
                mean = torch.tensor(self.mean or [0.0]).view(-1, 1, 1)
            std = torch.tensor(self.std or [1.0]).view(-1, 1, 1)
            self._on_device[device] = tuple(t.to(device, torch.float32) for t in (eig, mean, std))
        return self._on_device[device]

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the task (its collate) pickled under spawn / forkserver: not the device copies
        return {**self.__dict__, "_on_device": {}}

    def _lighting_noise(self, floats: torch.Tensor) -> torch.Tensor:
        """One RGB offset per image: the eigenvectors weighted by eigenvalue x N(0, lighting), as AlexNet."""
        eig = self._constants(floats.device)[0]
        batch = floats.shape[:-3]
        alpha = torch.randn(*batch, 3, device=floats.device) * self.lighting
        rgb = alpha @ eig.T  # rgb[c] = sum_j eigvec[c, j] * eigval[j] * alpha[j]
        return rgb[..., None, None]
