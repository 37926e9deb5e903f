"""The fast uint8 detection augmentations against torchvision's: same draws, pixels within a level or a few (hue),
boxes and masks that follow the rescaled pixels, other inputs through torchvision's own path."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cvtrain.data.transforms import detection_augment as A


def noise(height: int = 96, width: int = 80, seed: int = 0) -> torch.Tensor:
    """Random colours: the worst case for 8-bit HSV (every hue, every saturation)."""
    return torch.randint(
        0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def difference(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float]:
    d = (a.int() - b.int()).abs()
    return int(d.max()), float(d.float().mean())


@pytest.mark.parametrize(
    ("kernel", "reference", "factor", "max_diff"),
    [
        (A.adjust_brightness, F.adjust_brightness, 1.12, 1),
        (A.adjust_brightness, F.adjust_brightness, 0.88, 1),
        (A.adjust_contrast, F.adjust_contrast, 1.4, 1),
        (A.adjust_contrast, F.adjust_contrast, 0.6, 1),
        (A.adjust_saturation, F.adjust_saturation, 1.4, 2),
        (A.adjust_saturation, F.adjust_saturation, 0.6, 2),
    ],
)
def test_lookup_and_blend_kernels_match_torchvision(kernel, reference, factor, max_diff) -> None:
    image = noise()
    ours = A.from_pil(kernel(A.to_pil(image), factor))
    assert ours.dtype == torch.uint8 and ours.shape == image.shape
    biggest, mean = difference(ours, reference(image, factor))
    assert biggest <= max_diff and mean < 0.6


@pytest.mark.parametrize("factor", [0.05, -0.05, 0.013, -0.031])
def test_hue_shift_matches_torchvision_adjust_hue(factor: float) -> None:
    image = noise()
    biggest, mean = difference(A.from_pil(A.adjust_hue(A.to_pil(image), factor)), F.adjust_hue(image, factor))
    assert biggest <= 10 and mean < 1.0
    # greys have no hue: they come back as they were
    grey = torch.arange(256, dtype=torch.uint8).repeat(3, 4, 1)
    assert torch.equal(A.from_pil(A.adjust_hue(A.to_pil(grey), factor)), grey)


def test_photometric_distort_draws_as_torchvision_and_stays_close() -> None:
    image = tv_tensors.Image(noise())
    ours, theirs = A.PhotometricDistort(p=0.5), v2.RandomPhotometricDistort(p=0.5)
    for seed in range(12):
        torch.manual_seed(seed)
        mine = ours(image)
        torch.manual_seed(seed)
        reference = theirs(image)
        assert isinstance(mine, tv_tensors.Image) and mine.dtype == torch.uint8 and mine.is_contiguous()
        biggest, mean = difference(mine, reference)
        assert biggest <= 16 and mean < 1.5, (
            seed,
            biggest,
            mean,
        )  # contrast 1.5 after hue amplifies its steps


def test_photometric_distort_leaves_float_images_to_torchvision() -> None:
    image = tv_tensors.Image(noise().float() / 255)
    torch.manual_seed(3)
    mine = A.PhotometricDistort(p=1.0)(image)
    torch.manual_seed(3)
    assert torch.equal(mine, v2.RandomPhotometricDistort(p=1.0)(image))


def test_random_scale_draws_the_scale_of_random_affine() -> None:
    ours = A.RandomScale((0.75, 1.25), [124, 116, 104])
    theirs = v2.RandomAffine(degrees=0.0, scale=(0.75, 1.25))
    for seed in range(5):
        torch.manual_seed(seed)
        mine = ours.make_params([noise()])
        torch.manual_seed(seed)
        assert mine == theirs.make_params([noise()])


@pytest.mark.parametrize("scale", [0.77, 0.9, 1.13, 1.24])
def test_random_scale_boxes_and_masks_follow_the_pixels(scale: float) -> None:
    height, width = 61, 83
    boxes = [[20, 10, 41, 33], [50, 30, 70, 50], [5, 40, 17, 58]]
    pixels = torch.zeros(3, height, width, dtype=torch.uint8)
    masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        pixels[index, y0:y1, x0:x1] = 255  # one channel per object
        masks[index, y0:y1, x0:x1] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32), format="XYXY",
                                          canvas_size=(height, width)),
        "masks": tv_tensors.Mask(masks),
    }  # fmt: skip
    transform = A.RandomScale((scale, scale), [10, 20, 30])
    image, out = transform(tv_tensors.Image(pixels), target)
    assert image.shape == pixels.shape and image.dtype == torch.uint8
    assert out["boxes"].canvas_size == (height, width) and out["masks"].shape == masks.shape
    for index, box in enumerate(out["boxes"].tolist()):
        ys, xs = torch.nonzero(image[index] > 127, as_tuple=True)
        extent = [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
        assert extent == pytest.approx(box, abs=1.0)
        ys, xs = torch.nonzero(out["masks"][index], as_tuple=True)
        assert [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1] == pytest.approx(
            box, abs=1.0
        )
    if scale < 1:  # the border is the fill colour
        assert image[:, 0, 0].tolist() == [10, 20, 30] and image[:, -1, -1].tolist() == [10, 20, 30]
