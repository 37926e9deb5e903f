"""The dataset capabilities are asked with isinstance, also through a wrapper that forwards to its dataset."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image
from torchvision.datasets import ImageFolder

from cvtrain.contracts.datasets import ChangesWithEpoch, GroupsBatches, TransformsImages, TransformsSamples
from cvtrain.data.transforms.mosaic import with_mosaic


class Grouped:
    def __init__(self) -> None:
        self.transforms: Any = None
        self.batch_sampler_factory = lambda sampler, batch_size: [[0]]

    def __len__(self) -> int:
        return 1


def test_a_mosaic_keeps_the_grouping_of_its_dataset_and_changes_with_the_epoch() -> None:
    aug = SimpleNamespace(image_size=32, mosaic=0.5, close_mosaic=1)
    dataset = Grouped()
    mosaic = with_mosaic(dataset, aug)
    assert isinstance(dataset, GroupsBatches) and not isinstance(dataset, ChangesWithEpoch)
    assert isinstance(mosaic, GroupsBatches) and isinstance(mosaic, ChangesWithEpoch)
    assert mosaic.batch_sampler_factory is dataset.batch_sampler_factory
    assert not isinstance(object(), GroupsBatches)


def test_image_folders_have_both_transform_attributes(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cat" / "a.png")
    folder = ImageFolder(tmp_path)
    assert isinstance(folder, TransformsImages) and isinstance(folder, TransformsSamples)
    assert isinstance(Grouped(), TransformsSamples) and not isinstance(Grouped(), TransformsImages)
