"""`aug.mean_image=true`: the per-pixel mean image of a training set at the network's input size, as AlexNet
(and Caffe's mean file) subtracted it instead of one mean per channel.

Every training image goes through the evaluation transform (resize + centre crop to `aug.image_size`, the same
DCT-scaled decode) and the float average of those [3, S, S] images, in [0, 1], is the mean image. A pass over a
large training set takes a while, so it is computed once and cached beside the data, in `<split folder's parent>/
mean_image-<S>px-<key>.pt` (or under `~/.cache/cvtrain/mean_images/` when that folder is read-only); the key
changes with the list of files and the transform's sizes. Checkpoints store the mean image itself, so `cvtrain
eval` and `predict` need neither the cache nor the training data.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cvtrain.contracts.batch import BadSample
from cvtrain.data.imagefolder.classification import ImageFolderDataset
from cvtrain.data.transforms.pipelines import ClassificationTransform, eval_resize_size
from cvtrain.errors import ConfigError
from cvtrain.workers import worker_init_fn

log = logging.getLogger(__name__)
USER_CACHE = Path("~/.cache/cvtrain/mean_images")


def cache_name(dataset: ImageFolderDataset, aug: Any) -> str:
    """The cache file's name: the input size and a hash of the folder, its files and the evaluation sizes."""
    digest = hashlib.sha256()
    for part in (str(dataset.split_dir.resolve()), aug.image_size, eval_resize_size(aug), len(dataset)):
        digest.update(f"{part}\n".encode())
    for path, label in dataset.samples:
        digest.update(f"{Path(path).relative_to(dataset.split_dir)}\t{label}\n".encode())
    return f"mean_image-{aug.image_size}px-{digest.hexdigest()[:16]}.pt"


def compute_mean_image(dataset: Dataset, *, num_workers: int, batch_size: int = 64) -> torch.Tensor:
    """The float64 average of the dataset's uint8 images (all of one size) as float32 in [0, 1]; unreadable
    images are left out (and counted in the log)."""
    total: torch.Tensor | None = None
    count = bad = 0
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=list,
        worker_init_fn=worker_init_fn(),
    )
    for samples in loader:
        images = [s[0] for s in samples if not isinstance(s, BadSample)]
        bad += len(samples) - len(images)
        if images:
            batch_sum = torch.stack(images).sum(dim=0, dtype=torch.float64)
            total = batch_sum if total is None else total + batch_sum
            count += len(images)
    if total is None:
        raise ConfigError("aug.mean_image=true: no training image could be read to compute the mean image")
    if bad:
        log.warning("mean image: %d unreadable training images left out", bad)
    return (total / (255.0 * count)).float()


def training_mean_image(train: Dataset, aug: Any, *, num_workers: int) -> torch.Tensor:
    """The mean image [3, S, S] of the training split `train`, from the cache or computed (and cached) now."""
    if not isinstance(train, ImageFolderDataset):
        raise ConfigError(
            "aug.mean_image=true needs a class-per-folder training set (data=imagenet, imagefolder or shapes)"
        )
    name = cache_name(train, aug)
    places = [train.split_dir.parent / name, USER_CACHE.expanduser() / name]
    for path in places:
        if path.is_file():
            log.info("mean image from %s", path)
            return torch.load(path, weights_only=True)
    evaluation = copy.copy(train)  # the same files through the evaluation transform
    evaluation.transform = ClassificationTransform(aug, train=False)
    log.info("computing the mean image of %d training images at %d px (once)", len(train), aug.image_size)
    mean = compute_mean_image(evaluation, num_workers=num_workers)
    for path in places:
        try:
            _save_atomically(mean, path)
        except OSError:
            continue  # a read-only data folder: the user cache next
        log.info("mean image cached in %s", path)
        break
    return mean


def _save_atomically(tensor: torch.Tensor, path: Path) -> None:
    """Write via a temporary file and a rename, so concurrent runs (DDP ranks) never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(tensor, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
