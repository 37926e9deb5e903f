"""DCT-scaled JPEG decoding: which files take the fast path, which scale is chosen, and that a scaled decode of a
crop is close to the full decode of the same crop."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from cvtrain.data.images import read_image
from cvtrain.data.jpeg import decode_crop, jpeg_size, resize_box, scale_divisor, scaled_box
from tests.conftest import fixture_dir, write_image


def photo() -> Path:
    """A real 640 x 480 photo (COCO val2017)."""
    return fixture_dir("coco-sample") / "images" / "000000000089.jpg"


def test_jpeg_size_reads_the_header_and_refuses_what_libjpeg_turbo_does_not_convert(tmp_path: Path) -> None:
    gray = write_image(tmp_path / "gray.jpg", size=(30, 20), mode="L", fmt="JPEG")
    assert jpeg_size(gray.read_bytes()) == (20, 30)
    cmyk = write_image(tmp_path / "cmyk.jpg", mode="CMYK", fmt="JPEG")
    png = write_image(tmp_path / "png.JPEG", fmt="PNG")
    assert jpeg_size(cmyk.read_bytes()) is None  # PIL converts CMYK (and inverts Adobe's) in read_image
    assert jpeg_size(png.read_bytes()) is None
    assert jpeg_size(b"\xff\xd8 not really a jpeg") is None and jpeg_size(b"") is None
    assert jpeg_size(photo().read_bytes()) == (480, 640)


@pytest.mark.parametrize(
    ("box", "out", "divisor"),
    [
        ((0, 0, 480, 640), (224, 224), 2),  # 480 / 2 = 240 >= 224, 480 / 4 = 120 is not
        ((0, 0, 480, 640), (60, 80), 8),
        ((10, 20, 300, 200), (224, 224), 1),  # the box is smaller than the output: full size
        ((0, 0, 448, 1000), (224, 224), 2),  # exactly twice: still enough pixels
        ((0, 0, 447, 1000), (224, 224), 1),
    ],
)
def test_scale_is_the_smallest_power_of_two_that_still_covers_the_output(box, out, divisor) -> None:
    assert scale_divisor(box, out) == divisor


@pytest.mark.parametrize(
    ("box", "out", "divisor"),
    [
        ((0, 0, 480, 640), (224, 224), 2),
        ((13, 7, 455, 601), (224, 224), 2),
        ((41, 97, 401, 513), (96, 96), 4),
    ],
)
def test_a_scaled_decode_is_close_to_the_full_decode_and_resize(box, out, divisor) -> None:
    data = photo().read_bytes()
    assert scale_divisor(box, out) == divisor
    fast = decode_crop(data, (480, 640), box, out)
    # The box lands on whole pixels of the scaled decode: at most divisor / 2 original pixels away.
    scaled = (480 // divisor, 640 // divisor)
    snapped = [round(v * divisor) for v in scaled_box(box, (480, 640), scaled)]
    assert max(abs(a - b) for a, b in zip(snapped[:2], box[:2], strict=True)) <= divisor / 2
    reference = F.resized_crop(read_image(photo()), *snapped, size=list(out), antialias=True)
    assert fast.shape == reference.shape == (3, *out) and fast.dtype == torch.uint8
    diff = (fast.float() - reference.float()).abs().mean()
    # of 255: what remains is the DCT's own filtering (larger for the 1/4 scale on this detailed photo)
    assert 0 < diff < 1.0 * divisor


def test_at_full_scale_the_crop_equals_the_full_decode_and_resize() -> None:
    data = photo().read_bytes()
    box, out = (100, 50, 200, 300), (150, 224)
    full = torch.from_numpy(simplejpeg.decode_jpeg(data)).permute(2, 0, 1)
    expected = F.resized_crop(full.contiguous(), *box, size=list(out), antialias=True)
    assert torch.equal(decode_crop(data, (480, 640), box, out), expected)


@pytest.mark.parametrize("layout", ["decoded channels-last", "channels-first"])
def test_resize_box_equals_torchvisions_resized_crop(layout: str) -> None:
    full = torch.from_numpy(simplejpeg.decode_jpeg(photo().read_bytes())).permute(2, 0, 1)
    image = full if layout == "decoded channels-last" else full.contiguous()
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        height, width = (int(v) for v in torch.randint(1, 480, (2,), generator=generator))
        width = min(width + 160, 640)
        top = int(torch.randint(0, 480 - height + 1, (1,), generator=generator))
        left = int(torch.randint(0, 640 - width + 1, (1,), generator=generator))
        out = (int(torch.randint(16, 300, (1,), generator=generator)), 224)  # shrunk and enlarged
        box = (top, left, height, width)
        expected = F.resized_crop(image, *box, size=list(out), antialias=True)
        assert torch.equal(resize_box(image, box, out), expected), (box, out)


def test_grayscale_jpeg_decodes_to_the_same_rgb_as_read_image(tmp_path: Path) -> None:
    path = write_image(tmp_path / "gray.jpg", size=(32, 24), mode="L", fmt="JPEG")
    decoded = decode_crop(path.read_bytes(), (24, 32), (0, 0, 24, 32), (24, 32))
    assert torch.equal(decoded, read_image(path))


def test_truncated_jpeg_raises_value_error_for_the_caller_to_fall_back(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    data = buffer.getvalue()[:-400]
    with pytest.raises(ValueError):
        decode_crop(data, (64, 64), (0, 0, 64, 64), (32, 32))
