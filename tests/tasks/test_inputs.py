"""The device-side conversion of uint8 batches: what `v2.ToDtype(float32, scale=True)` + `v2.Normalize` gave."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from cvtrain.tasks.inputs import ImageInput

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def test_normalised_batches_equal_torchvisions_float_conversion() -> None:
    batch = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    expected = v2.Normalize(MEAN, STD)(v2.ToDtype(torch.float32, scale=True)(batch))
    assert torch.equal(ImageInput(mean=MEAN, std=STD)(batch), expected)
    assert torch.equal(ImageInput()(batch), v2.ToDtype(torch.float32, scale=True)(batch))  # detectors: [0, 1]


def test_lists_of_sizes_convert_one_by_one_and_channels_last_is_kept() -> None:
    images = [
        torch.randint(0, 256, (3, 4, 6), dtype=torch.uint8),
        torch.randint(0, 256, (3, 5, 2), dtype=torch.uint8),
    ]
    out = ImageInput(mean=MEAN, std=STD)(images)
    assert [tuple(o.shape) for o in out] == [(3, 4, 6), (3, 5, 2)] and all(
        o.dtype == torch.float32 for o in out
    )
    nhwc = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8).contiguous(
        memory_format=torch.channels_last
    )
    assert ImageInput(mean=MEAN, std=STD)(nhwc).is_contiguous(memory_format=torch.channels_last)


def test_float_inputs_are_refused_rather_than_normalised_twice() -> None:
    with pytest.raises(TypeError, match="uint8"):
        ImageInput(mean=MEAN, std=STD)(torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="both mean and std"):
        ImageInput(mean=MEAN)
