"""DCT-scaled JPEG decoding: which files take the fast path, which scale is chosen, that a scaled decode of a
crop is close to the full decode of the same crop, and that the region decoder (cvtrain/_jpeg_region.c) gives the
whole decode's pixels and refuses what simplejpeg refuses."""

from __future__ import annotations

import io
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as F

from cvtrain.data.decoding import jpeg
from cvtrain.data.decoding.images import read_image
from cvtrain.data.decoding.jpeg import decode_crop, jpeg_size, resize_box, scale_divisor, scaled_box
from tests.conftest import block_picture, fixture_dir, write_image, write_oriented


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


needs_region = pytest.mark.skipif(jpeg.decode_region is None, reason="cvtrain._jpeg_region was not built")


def real_photos() -> list[Path]:
    """The 8 unresized photos of the fixtures: 7 of them 4:4:4, VOC's 2007_000063 4:2:0."""
    voc = fixture_dir("voc-sample") / "VOCdevkit" / "VOC2012" / "JPEGImages"
    return sorted((fixture_dir("coco-sample") / "images").glob("*.jpg")) + sorted(voc.glob("*.jpg"))


def encodings() -> dict[str, bytes]:
    """The COCO photo re-encoded with each chroma subsampling, as grey and as a progressive JPEG."""
    source, found = Image.open(photo()), {}
    for name, options in {
        "4:2:0": dict(subsampling=2),
        "4:2:2": dict(subsampling=1),
        "4:4:4": dict(subsampling=0),
        "progressive 4:2:0": dict(subsampling=2, progressive=True),
    }.items():
        buffer = io.BytesIO()
        source.save(buffer, "JPEG", quality=90, **options)
        found[name] = buffer.getvalue()
    buffer = io.BytesIO()
    source.convert("L").save(buffer, "JPEG")
    return found | {"grey": buffer.getvalue()}


def random_boxes(height: int, width: int, count: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(count):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        boxes.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
    return boxes + [(0, 0, height, width), (height - 1, width - 1, 1, 1)]


def assert_region_equals_whole_decode(data: bytes, seed: int) -> None:
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    for divisor in (1, 2, 4, 8):
        scaled = (math.ceil(height / divisor), math.ceil(width / divisor))
        whole = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=scaled[0], min_width=scaled[1])
        assert whole.shape[:2] == scaled
        for top, left, h, w in random_boxes(*scaled, count=40, seed=seed + divisor):
            region = np.frombuffer(jpeg.decode_region(data, divisor, top, left, h, w), np.uint8)
            assert np.array_equal(region.reshape(h, w, 3), whole[top : top + h, left : left + w]), (
                divisor,
                (top, left, h, w),
            )


@needs_region
def test_a_region_of_a_real_photo_is_the_whole_decode_cut_to_the_box_bit_for_bit() -> None:
    # Without the decoder's 2-pixel margin around the box, libjpeg's fancy upsampling treats the cropped row's
    # edges as the image's: up to 33 of 255 off in the box's edge columns of 4:2:0 and 4:2:2 files.
    for seed, path in enumerate(real_photos()):
        assert_region_equals_whole_decode(path.read_bytes(), seed)


@needs_region
@pytest.mark.parametrize("encoding", ["4:2:0", "4:2:2", "4:4:4", "progressive 4:2:0", "grey"])
def test_a_region_is_the_whole_decode_cut_to_the_box_for_every_subsampling(encoding: str) -> None:
    assert_region_equals_whole_decode(encodings()[encoding], seed=100)


def test_decode_crop_gives_the_same_picture_with_and_without_the_region_decoder(monkeypatch) -> None:
    crops = []
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for path in real_photos():
            data = path.read_bytes()
            size = jpeg_size(data)
            for _ in range(12):
                box = tuple(RandomResizedCrop.get_params(torch.empty(1, *size), (0.08, 1.0), (3 / 4, 4 / 3)))
                out = (224, 224) if len(crops) % 2 else (96, 128)  # full-scale and DCT-scaled decodes
                crops.append((data, size, box, out, decode_crop(data, size, box, out)))
    monkeypatch.setattr(jpeg, "decode_region", None)
    for data, size, box, out, fast in crops:
        assert torch.equal(fast, decode_crop(data, size, box, out)), box


@needs_region
def test_decoding_regions_in_threads_gives_the_same_pixels() -> None:
    data = photo().read_bytes()
    boxes = random_boxes(480, 640, count=64, seed=7)
    alone = [jpeg.decode_region(data, 1, *box) for box in boxes]
    with ThreadPoolExecutor(4) as pool:  # the GIL is released while libjpeg decodes
        assert list(pool.map(lambda box: jpeg.decode_region(data, 1, *box), boxes)) == alone


@needs_region
def test_the_region_decoder_refuses_corrupt_data_and_boxes_outside_the_image(tmp_path: Path) -> None:
    data = photo().read_bytes()
    scan = data.index(b"\xff\xda")  # start of scan: entropy-coded data follows
    middle = scan + (len(data) - scan) // 2
    corrupt = data[:middle] + b"\xff\xd4" + data[middle + 2 :]  # a stray marker inside the scan
    cmyk = write_image(tmp_path / "cmyk.jpg", mode="CMYK", fmt="JPEG").read_bytes()
    for bad in (corrupt, data[: len(data) // 2], b"\xff\xd8 not a jpeg", b"", cmyk):
        with pytest.raises(ValueError):
            jpeg.decode_region(bad, 1, 0, 0, 480, 640)
    with pytest.raises(ValueError):  # simplejpeg refuses the same corrupt file (its warnings are errors too)
        simplejpeg.decode_jpeg(corrupt)
    for divisor, box in [(1, (0, 0, 481, 640)), (2, (0, 1, 240, 320)), (3, (0, 0, 8, 8)), (1, (0, 0, 0, 8))]:
        with pytest.raises(ValueError):
            jpeg.decode_region(data, divisor, *box)


def test_a_truncated_photo_is_refused_even_when_the_box_lies_above_the_cut() -> None:
    # A region decode would stop before the missing end; decode_crop sends files without EOI to simplejpeg.
    data = photo().read_bytes()
    for cut in (data[: len(data) // 2], data[:-2]):
        with pytest.raises(ValueError):
            decode_crop(cut, (480, 640), (0, 0, 100, 100), (100, 100))


def test_the_region_decoder_is_built_where_a_compiler_and_libjpegs_headers_are() -> None:
    if shutil.which("gcc") is None or not Path("/usr/include/jpeglib.h").exists():
        pytest.skip("no compiler or no libjpeg headers: decode_crop decodes whole files")
    assert jpeg.decode_region is not None, (
        "build it: pip install -e . (or python setup.py build_ext --inplace)"
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_stored_turned_or_mirrored_declines_the_region_decoder(
    tmp_path: Path, orientation: int
) -> None:
    # the crop box is drawn on the displayed picture: only a file stored as displayed may be cut by it
    path = write_oriented(tmp_path / "phone.jpg", block_picture(48, 32), orientation)
    assert jpeg_size(path.read_bytes()) == ((32, 48) if orientation == 1 else None)
