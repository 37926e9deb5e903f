"""`aug.mean_image=true`: the per-pixel mean of the evaluation-transformed training images, cached beside the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cvtrain.data.imagefolder import mean_image as module
from cvtrain.data.imagefolder.classification import ImageFolderDataset, find_classes
from cvtrain.data.imagefolder.mean_image import training_mean_image
from cvtrain.data.synthetic.classification import SyntheticClassification
from cvtrain.data.transforms.pipelines import ClassificationTransform
from cvtrain.errors import ConfigError
from tests.conftest import block_picture, make_imagefolder, write_oriented


def aug(size: int = 16) -> object:
    return OmegaConf.create(
        dict(image_size=size, resize_size=None, random_resized_crop=True, crop_scale=[0.08, 1.0], hflip=0.5)
    )


def train_split(root: Path) -> ImageFolderDataset:
    folder = root / "train"
    return ImageFolderDataset(
        split_dir=folder, classes=find_classes(folder), transform=ClassificationTransform(aug(), train=True)
    )


def test_mean_image_is_the_average_of_the_evaluation_transformed_images_and_is_cached(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "data", per_class=3)
    train = train_split(root)
    mean = training_mean_image(train, aug(), num_workers=0)
    evaluation = ClassificationTransform(aug(), train=False)
    images = [evaluation.read(path).double() for path, _ in train.samples]
    assert mean.shape == (3, 16, 16) and mean.dtype == torch.float32
    assert torch.allclose(mean, (torch.stack(images).mean(0) / 255).float(), atol=1e-6)
    assert not torch.equal(mean[:, 0], mean[:, 8])  # per pixel, not per channel (the images are noisy)
    cached = list(root.glob("mean_image-16px-*.pt"))
    assert len(cached) == 1  # beside the data
    # a second run reads the cache and never decodes; another size or file list is another key
    original = module.compute_mean_image
    module.compute_mean_image = lambda *a, **k: pytest.fail("recomputed despite the cache")
    try:
        assert torch.equal(training_mean_image(train_split(root), aug(), num_workers=0), mean)
    finally:
        module.compute_mean_image = original
    training_mean_image(train, aug(size=8), num_workers=0)
    (root / "train" / "n01" / "0.JPEG").unlink()
    training_mean_image(train_split(root), aug(), num_workers=0)
    assert len(list(root.glob("mean_image-*.pt"))) == 3


def test_a_read_only_data_folder_caches_in_the_user_cache(tmp_path: Path, monkeypatch) -> None:
    root = make_imagefolder(tmp_path / "data", per_class=1)
    monkeypatch.setattr(module, "USER_CACHE", tmp_path / "cache")
    save = module._save_atomically

    def read_only_data(tensor: torch.Tensor, path: Path) -> None:
        if path.is_relative_to(root):
            raise PermissionError(13, "Permission denied", str(path))
        save(tensor, path)

    monkeypatch.setattr(module, "_save_atomically", read_only_data)
    mean = training_mean_image(train_split(root), aug(), num_workers=0)
    assert not list(root.glob("mean_image-*.pt"))
    assert torch.equal(torch.load(next((tmp_path / "cache").glob("mean_image-16px-*.pt"))), mean)
    assert not list((tmp_path / "cache").glob(".*.tmp"))  # no temporary left behind


def test_other_datasets_are_refused() -> None:
    with pytest.raises(ConfigError, match="class-per-folder"):
        training_mean_image(
            SyntheticClassification(length=4, image_size=8, num_classes=2), aug(), num_workers=0
        )


def test_the_mean_image_is_of_the_pictures_as_displayed(tmp_path: Path) -> None:
    shown = block_picture(48, 32)
    for orientation in range(1, 9):
        write_oriented(
            tmp_path / "data" / "train" / f"c{orientation % 2}" / f"{orientation}.jpg", shown, orientation
        )
    mean = training_mean_image(train_split(tmp_path / "data"), aug(), num_workers=0)
    expected = ClassificationTransform(aug(), train=False)(torch.from_numpy(shown).permute(2, 0, 1))
    assert (mean * 255 - expected.double()).abs().max() < 2  # one picture eight ways: its own mean
