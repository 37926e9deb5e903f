"""The device-side conversion of uint8 batches: what `v2.ToDtype(float32, scale=True)` + `v2.Normalize` gave."""

from __future__ import annotations

import pickle

import pytest
import torch
from torchvision.transforms import v2

from cvtrain.errors import ConfigError
from cvtrain.tasks.inputs import IMAGENET_EIGVAL, IMAGENET_EIGVEC, ImageInput
from tests.conftest import gpu_waits, needs_gpu

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


def test_a_zero_std_or_a_mean_per_two_channels_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"aug.std=\[0.229, 0.0, 0.225\]: every value must be non-zero"):
        ImageInput(mean=MEAN, std=[0.229, 0.0, 0.225])
    with pytest.raises(ConfigError, match="aug.mean=.*one value per RGB channel"):
        ImageInput(mean=[0.5, 0.5], std=STD)
    batch = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    one_for_all = v2.Normalize([0.5], [0.25])(v2.ToDtype(torch.float32, scale=True)(batch))
    assert torch.equal(ImageInput(mean=[0.5], std=[0.25])(batch), one_for_all)


def test_a_pickled_copy_leaves_the_device_copies_behind() -> None:
    """Data workers started by spawn or forkserver receive the task pickled: its constants are copied again where
    it is used."""
    inputs = ImageInput(mean=MEAN, std=STD, lighting=0.1)
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    expected = inputs(batch)
    copy = pickle.loads(pickle.dumps(inputs))
    assert inputs._on_device and not copy._on_device
    assert torch.equal(copy(batch), expected)


def test_mean_image_is_subtracted_per_pixel_then_std_divides() -> None:
    mean_image = torch.rand(3, 4, 4)
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    out = ImageInput(mean=MEAN, std=STD, mean_image=mean_image)(batch)
    expected = (v2.ToDtype(torch.float32, scale=True)(batch) - mean_image) / torch.tensor(STD)[:, None, None]
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="aug.image_size"):
        ImageInput(mean=MEAN, std=STD, mean_image=mean_image)(torch.zeros(1, 3, 5, 5, dtype=torch.uint8))


def test_lighting_adds_one_pca_colour_offset_per_image_in_training_only() -> None:
    batch = torch.randint(0, 256, (4000, 3, 2, 2), dtype=torch.uint8)
    lighting = ImageInput(mean=MEAN, std=STD, lighting=0.1)
    plain = ImageInput(mean=MEAN, std=STD)(batch)
    assert torch.equal(lighting(batch), plain)  # evaluation and predict: no noise
    torch.manual_seed(0)
    offset = (lighting(batch, train=True) - plain) * torch.tensor(STD)[:, None, None]  # back in [0, 1] units
    per_image = offset[:, :, 0, 0]
    assert torch.allclose(
        offset, per_image[:, :, None, None].expand_as(offset), atol=1e-5
    )  # constant per image
    # offset = eigvec @ (eigval * alpha) with alpha ~ N(0, 0.1): recover alpha and check its distribution
    alpha = torch.linalg.solve(torch.tensor(IMAGENET_EIGVEC), per_image.T).T / torch.tensor(IMAGENET_EIGVAL)
    assert alpha.mean(0).abs().max() < 0.01
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1), rtol=0.05)
    assert abs(torch.corrcoef(alpha.T)[0, 1]) < 0.06  # independent weights
    with pytest.raises(ConfigError, match="aug.lighting"):
        ImageInput(lighting=-0.1)


@needs_gpu
def test_converting_a_batch_on_the_gpu_never_waits_for_it() -> None:
    """The training step runs this at every batch: a wait would stop the host queueing the next step's work."""
    batch = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, device="cuda")
    for inputs in (
        ImageInput(mean=MEAN, std=STD, lighting=0.1),
        ImageInput(mean=MEAN, std=STD, mean_image=torch.rand(3, 8, 8)),
    ):
        first = inputs(batch, train=True)  # copies the constants to the GPU, once
        with gpu_waits() as waits:
            again = inputs(batch, train=True)
        assert waits == [] and again.device == first.device
