"""aug=yolo's colour jitter on uint8 equals torchvision's ColorJitter: the same draws and (within rounding) pixels."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvtrain.data.transforms.yolo_colour import ColourJitter, draw_colour_jitter, jitter_colour_


def random_image(height: int = 150, width: int = 300, seed: int = 0) -> torch.Tensor:
    """Noise plus the corner cases of HSV: greys, black, white, pure and mixed hues with ties."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    special = [(0, 0, 0), (255, 255, 255), (114, 114, 114), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    special += [(255, 255, 0), (0, 255, 255), (255, 0, 255), (10, 200, 200), (200, 10, 200), (1, 0, 0)]
    for i, rgb in enumerate(special):
        image[:, 0, i] = torch.tensor(rgb, dtype=torch.uint8)
    return image


def jittered(image: torch.Tensor, **factors: float | None) -> torch.Tensor:
    order = (0, 2, 3) if "order" not in factors else factors.pop("order")
    params = {"brightness": None, "saturation": None, "hue": None, **factors}
    return jitter_colour_(image.clone(), ColourJitter(order=order, **params))


@pytest.mark.parametrize("factor", [0.6, 0.93, 1.0, 1.17, 1.4])
def test_brightness_equals_torchvision_bit_for_bit(factor: float) -> None:
    image = random_image()
    assert torch.equal(jittered(image, brightness=factor), F.adjust_brightness(image, factor))


@pytest.mark.parametrize("factor", [0.0, 0.3, 0.77, 1.0, 1.5, 1.7])
def test_saturation_equals_torchvision_bit_for_bit(factor: float) -> None:
    image = random_image()
    assert torch.equal(jittered(image, saturation=factor), F.adjust_saturation(image, factor))


@pytest.mark.parametrize("factor", [-0.5, -0.3, -0.015, -0.004, 0.0, 0.009, 0.015, 0.25, 0.5])
def test_hue_equals_torchvision_within_one_level(factor: float) -> None:
    image = random_image()
    difference = (jittered(image, hue=factor).int() - F.adjust_hue(image, factor).int()).abs()
    assert difference.max() <= 1
    assert (difference > 0).float().mean() < 1e-3
    assert torch.equal(jittered(image[:, :1, :12], hue=factor), F.adjust_hue(image[:, :1, :12], factor))


def test_the_draws_and_the_whole_jitter_match_colorjitter_in_its_random_order() -> None:
    jitter = v2.ColorJitter(brightness=0.4, saturation=0.7, hue=0.015)  # aug=yolo's default gains
    image = random_image(height=200, width=160)  # several bands of TILE_PIXELS
    orders = set()
    for seed in range(12):
        torch.manual_seed(seed)
        expected = jitter(image)
        after_reference = torch.get_rng_state()
        torch.manual_seed(seed)
        drawn = draw_colour_jitter(jitter)
        assert torch.equal(torch.get_rng_state(), after_reference)  # the same generator calls
        orders.add(drawn.order)
        out = jitter_colour_(image.clone(), drawn)
        difference = (out.int() - expected.int()).abs()
        assert difference.max() <= 2  # a hue rounding scaled by a later brightness or saturation
        assert (difference > 0).float().mean() < 1e-3
    assert len(orders) > 3


def test_a_view_is_jittered_in_place_and_nothing_around_it() -> None:
    image = torch.full((3, 40, 50), 114, dtype=torch.uint8)
    jitter_colour_(image[:, 10:30, 5:45], ColourJitter(order=(0,), brightness=1.2, saturation=None, hue=None))
    assert (image[:, 10:30, 5:45] == 136).all()  # trunc(114 * 1.2)
    image[:, 10:30, 5:45] = 114
    assert (image == 114).all()
