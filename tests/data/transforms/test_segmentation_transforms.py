"""Joint segmentation transforms: the mask stays aligned with the image through scale, padded crop and flip."""

from types import SimpleNamespace

import pytest
import torch
from torchvision import tv_tensors

from cvtrain.data.decoding.palette import IGNORE_INDEX
from cvtrain.data.transforms.segmentation import RandomScale, segmentation_transforms
from cvtrain.errors import ConfigError

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
# One well-separated colour per class, none equal to the mean colour used for padding.
COLOURS = torch.tensor([[20, 20, 20], [240, 20, 20], [20, 240, 20], [20, 20, 240]], dtype=torch.uint8)


def aug(**fields) -> SimpleNamespace:
    return SimpleNamespace(
        **{"image_size": 24, "scale_range": [0.5, 2.0], "hflip": 0.5, "mean": MEAN, "std": STD, **fields}
    )


def blocks_mask(height: int = 40, width: int = 56, block: int = 6) -> torch.Tensor:
    """Classes in blocks (not symmetric, so a flip of the mask alone would be caught)."""
    ys, xs = torch.meshgrid(torch.arange(height) // block, torch.arange(width) // block, indexing="ij")
    return ((ys * 3 + xs * 2 + (xs > 2).long()) % 4).to(torch.uint8)  # as datasets give masks


def image_of(mask: torch.Tensor) -> tv_tensors.Image:
    """An image that is a function of the mask: each class painted in its own colour."""
    return tv_tensors.Image(COLOURS[mask.long()].permute(2, 0, 1).contiguous())


def decode(image: torch.Tensor) -> torch.Tensor:
    """Class of each pixel from its colour (nearest palette colour)."""
    pixels = image.float().permute(1, 2, 0)[..., None, :]  # [H, W, 1, 3]
    return (pixels - COLOURS.float()).abs().sum(-1).argmin(-1)


def interior(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood has one value: where bilinear interpolation cannot blend classes."""
    m = mask.float()[None, None]
    high = torch.nn.functional.max_pool2d(m, 3, stride=1, padding=1)
    low = -torch.nn.functional.max_pool2d(-m, 3, stride=1, padding=1)
    return (high == low)[0, 0]


@pytest.mark.parametrize("seed", range(12))
def test_mask_stays_aligned_with_the_image_through_the_training_transforms(seed):
    mask = blocks_mask(block=10)
    torch.manual_seed(seed)
    transforms = segmentation_transforms(aug(image_size=32), train=True)
    image, out_mask = transforms(image_of(mask), tv_tensors.Mask(mask))
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8  # normalised on the device by the task
    assert out_mask.shape == (32, 32) and out_mask.dtype == torch.uint8
    assert set(out_mask.unique().tolist()) <= {0, 1, 2, 3, IGNORE_INDEX}  # nearest: no blended labels
    padding = out_mask == IGNORE_INDEX
    mean_colour = torch.tensor([round(255 * m) for m in MEAN], dtype=torch.uint8)[:, None]
    assert torch.equal(image[:, padding], mean_colour.expand(3, int(padding.sum())))
    check = interior(out_mask) & ~padding
    assert check.sum() > 100
    assert torch.equal(decode(image)[check], out_mask[check])


def test_random_scale_resizes_image_and_mask_together_with_nearest_labels():
    mask = blocks_mask(6, 9)
    image, out_mask = RandomScale((2.0, 2.0))(image_of(mask), tv_tensors.Mask(mask))
    assert image.shape == (3, 12, 18)
    assert torch.equal(out_mask, mask.repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_scaling_varies_between_draws_and_can_be_turned_off():
    mask = blocks_mask(20, 20)
    torch.manual_seed(0)
    scaled = segmentation_transforms(aug(image_size=20, hflip=0.0, scale_range=[0.5, 2.0]), train=True)
    void_counts = {
        int((scaled(image_of(mask), tv_tensors.Mask(mask))[1] == IGNORE_INDEX).sum()) for _ in range(8)
    }
    assert len(void_counts) > 1  # shrinking pads by different amounts
    for off in (None, [1.0, 1.0]):
        same = segmentation_transforms(aug(image_size=20, hflip=0.0, scale_range=off), train=True)
        image, out_mask = same(image_of(mask), tv_tensors.Mask(mask))
        assert torch.equal(out_mask, mask)


def test_flip_moves_image_and_mask_together():
    mask = blocks_mask(18, 24)
    flip = segmentation_transforms(aug(image_size=18, hflip=1.0, scale_range=None), train=True)
    image = image_of(mask)
    # A crop the size of the short side: compare against the same window of the flipped originals.
    torch.manual_seed(3)
    out_image, out_mask = flip(image, tv_tensors.Mask(mask))
    flipped_mask = mask.flip(-1)
    windows = [flipped_mask[:, x : x + 18] for x in range(24 - 18 + 1)]
    assert any(torch.equal(out_mask, w) for w in windows)
    assert torch.equal(decode(out_image), out_mask)


def test_evaluation_keeps_full_resolution_and_the_pixels():
    mask = blocks_mask(17, 23)
    image = image_of(mask)
    out = segmentation_transforms(aug(), train=False)(image, tv_tensors.Mask(mask))
    out_image, out_mask = out
    assert torch.equal(out_image, image) and out_image.dtype == torch.uint8
    assert torch.equal(out_mask, mask)
    alone = segmentation_transforms(aug(), train=False)(image)  # `cvtrain predict`: an image without a mask
    assert alone.shape == (3, 17, 23)


def test_image_smaller_than_the_crop_is_padded_with_mean_and_void():
    mask = torch.ones(5, 7, dtype=torch.uint8)
    out_image, out_mask = segmentation_transforms(
        aug(image_size=16, hflip=0.0, scale_range=None), train=True
    )(image_of(mask), tv_tensors.Mask(mask))
    assert out_mask.shape == (16, 16)
    assert int((out_mask == 1).sum()) == 35 and int((out_mask == IGNORE_INDEX).sum()) == 256 - 35
    mean_colour = torch.tensor([round(255 * m) for m in MEAN], dtype=torch.uint8)[:, None]
    assert torch.equal(out_image[:, out_mask == IGNORE_INDEX], mean_colour.expand(3, 256 - 35))


@pytest.mark.parametrize("bad", [[2.0, 1.0], [0.0, 1.0], [0.5]])
def test_bad_scale_range_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="aug.scale_range"):
        segmentation_transforms(aug(scale_range=bad), train=True)
