"""The classification pipeline: torchvision's random resized crop semantics from the header size, uint8 out, the
device-side normalisation equal to the old float pipeline, and every awkward file still read."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvtrain.data.decoding.images import BadImageError, read_image
from cvtrain.data.transforms.pipelines import ClassificationTransform, resized_size
from cvtrain.tasks.inputs import ImageInput
from tests.conftest import block_picture, fixture_dir, write_image, write_oriented

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def aug(**overrides: object) -> object:
    fields = dict(
        image_size=32,
        resize_size=None,
        random_resized_crop=True,
        crop_scale=[0.08, 1.0],
        hflip=0.5,
        mean=MEAN,
        std=STD,
    )
    return OmegaConf.create({**fields, **overrides})


def old_pipeline(a: object, *, train: bool) -> v2.Compose:
    """The float pipeline this one replaced (normalising in the data workers)."""
    size = a.image_size
    if train and a.random_resized_crop:
        geometry = [v2.RandomResizedCrop(size, scale=tuple(a.crop_scale), antialias=True)]
    else:
        resize = a.resize_size or round(size / 0.875)
        geometry = [v2.Resize(resize, antialias=True), v2.RandomCrop(size) if train else v2.CenterCrop(size)]
    flip = [v2.RandomHorizontalFlip(a.hflip)] if train else []
    convert = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD), v2.ToPureTensor()]
    return v2.Compose([*geometry, *flip, *convert])


@pytest.mark.parametrize(("height", "width"), [(375, 500), (500, 333), (40, 900), (224, 224), (31, 17)])
def test_the_crop_box_is_torchvisions_for_the_same_random_numbers(height: int, width: int) -> None:
    ours = ClassificationTransform(aug(image_size=224), train=True)
    theirs = v2.RandomResizedCrop(224, antialias=True)
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    for seed in range(50):  # extreme aspect ratios reach the 10-try centre-crop fallback
        torch.manual_seed(seed)
        box, out = ours.geometry(height, width)
        torch.manual_seed(seed)
        expected = theirs.make_params([image])
        assert box == (expected["top"], expected["left"], expected["height"], expected["width"])
        assert out == (224, 224)


@pytest.mark.parametrize(
    ("overrides", "train"),
    [
        ({}, True),
        ({"random_resized_crop": False}, True),
        ({}, False),
        ({"resize_size": 40, "hflip": 1.0}, False),
    ],
)
def test_uint8_output_normalised_on_the_device_equals_the_old_float_pipeline(
    overrides: dict, train: bool
) -> None:
    a = aug(**overrides)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 45, 61), dtype=torch.uint8))
    for seed in range(5):
        torch.manual_seed(seed)
        ours = ClassificationTransform(a, train=train)(image)
        torch.manual_seed(seed)
        expected = old_pipeline(a, train=train)(image)
        assert ours.dtype == torch.uint8 and ours.shape == (3, 32, 32)
        assert torch.equal(ImageInput(mean=MEAN, std=STD)(ours), expected)


@pytest.mark.parametrize(("height", "width"), [(375, 500), (500, 333), (37, 37), (480, 641)])
def test_resized_size_is_that_of_v2_resize(height: int, width: int) -> None:
    out = v2.Resize(256, antialias=True)(torch.zeros(3, height, width, dtype=torch.uint8))
    assert resized_size(height, width, 256) == tuple(out.shape[-2:])


@pytest.mark.parametrize("train", [True, False])
def test_reading_a_real_photo_is_close_to_decoding_it_fully(train: bool) -> None:
    # evaluation: resize 256 + centre crop 224 of a 640 x 480 photo is served by a 1/1 decode; at 96 px by 1/2
    path = fixture_dir("coco-sample") / "images" / "000000000089.jpg"
    for size in (224, 96):
        transform = ClassificationTransform(aug(image_size=size, hflip=0.0), train=train)
        torch.manual_seed(0)
        fast = transform.read(path)
        torch.manual_seed(0)
        full = transform(read_image(path))
        assert fast.dtype == torch.uint8 and fast.shape == full.shape == (3, size, size)
        assert (fast.float() - full.float()).abs().mean() < 3.0


def test_awkward_files_go_through_the_general_decoder(tmp_path: Path) -> None:
    transform = ClassificationTransform(aug(), train=True)
    files = [
        write_image(tmp_path / "gray.JPEG", size=(50, 40), mode="L", fmt="JPEG"),
        write_image(tmp_path / "cmyk.jpeg", size=(50, 40), mode="CMYK", fmt="JPEG"),
        write_image(tmp_path / "png_inside.JPEG", size=(50, 40), fmt="PNG"),
        write_image(tmp_path / "UPPER.JPG", size=(50, 40), fmt="JPEG"),
    ]
    for path in files:
        out = transform.read(path)
        assert out.dtype == torch.uint8 and out.shape == (3, 32, 32), path.name
    # a grayscale JPEG reads as three equal channels, as read_image gives it
    evaluation = ClassificationTransform(aug(), train=False)
    assert torch.equal(evaluation.read(files[0]), evaluation(read_image(files[0])))


def test_truncated_and_empty_files_are_bad_images(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    (tmp_path / "empty.jpg").write_bytes(b"")
    transform = ClassificationTransform(aug(), train=True)
    with pytest.raises(BadImageError, match="empty"):
        transform.read(tmp_path / "empty.jpg")
    # libjpeg-turbo refuses it, and so does the general decoder, as it did before: a BadImageError naming it
    with pytest.raises(BadImageError, match="cut.jpg: not a decodable image"):
        transform.read(tmp_path / "cut.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_a_phone_photo_is_cropped_from_the_displayed_picture(
    tmp_path: Path, orientation: int, train: bool
) -> None:
    shown = block_picture(96, 64)
    path = write_oriented(tmp_path / "phone.jpg", shown, orientation)
    transform = ClassificationTransform(aug(), train=train)
    torch.manual_seed(orientation)
    ours = transform.read(path)
    torch.manual_seed(orientation)
    expected = transform(torch.from_numpy(shown).permute(2, 0, 1))
    # a turned picture differs by tens of levels; orientation 1 takes the DCT-scaled decode (rounded box)
    assert ours.shape == expected.shape == (3, 32, 32)
    assert (ours.float() - expected.float()).abs().mean() < (6 if orientation == 1 else 1)
