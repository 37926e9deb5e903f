"""Decoding real files: every format, mode, bit depth and EXIF orientation to the uint8 RGB picture as displayed."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvtrain.data.decoding.images import BadImageError, displayed_size, is_image_file, read_image
from tests.conftest import block_picture, write_image, write_oriented

# 16-bit samples spanning the range, with low bytes that differ from the high ones
SAMPLES_16 = (np.arange(6 * 8, dtype=np.uint32).reshape(6, 8) * 1361 + 7).astype(np.uint16)


def png_16bit(path: Path, samples: np.ndarray, colour_type: int) -> Path:
    """A 16-bit PNG written chunk by chunk (Pillow writes 16-bit grayscale only): `samples` uint16 [H, W, C],
    colour type 0 (grey), 2 (RGB), 4 (grey + alpha) or 6 (RGBA)."""
    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def as_hwc(image: torch.Tensor) -> np.ndarray:
    assert image.dtype == torch.uint8 and image.ndim == 3 and image.shape[0] == 3
    return image.permute(1, 2, 0).numpy()


def test_grayscale_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = write_image(tmp_path / "g.jpg", mode="L", fmt="JPEG")
    image = read_image(path)
    assert image.shape == (3, 20, 24) and image.dtype == torch.uint8
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(path, format="JPEG")  # pure red in CMYK
    image = read_image(path)
    assert image.shape == (3, 12, 16)
    r, g, b = (image[c].float().mean() for c in range(3))
    assert r > 200 and g < 60 and b < 60


def test_png_bytes_behind_jpeg_name(tmp_path: Path) -> None:
    path = write_image(tmp_path / "actually_png.JPEG", fmt="PNG", colour=(10, 200, 10))
    assert path.read_bytes()[:4] == b"\x89PNG"
    image = read_image(path)
    assert image.shape == (3, 20, 24) and image[1].float().mean() > 150


def test_rgba_and_palette_png(tmp_path: Path) -> None:
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (8, 6), (1, 2, 3, 128)).save(rgba)
    assert read_image(rgba).shape == (3, 6, 8)
    pal = tmp_path / "p.png"
    Image.new("P", (8, 6), 0).save(pal)
    assert read_image(pal).shape == (3, 6, 8)


def test_bmp_goes_through_pil(tmp_path: Path) -> None:
    path = tmp_path / "x.bmp"
    Image.fromarray(np.full((5, 7, 3), 77, np.uint8)).save(path)
    assert read_image(path).float().mean() == pytest.approx(77)


def test_empty_and_truncated_files_raise_with_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BadImageError, match="empty.jpg.*0 bytes"):
        read_image(empty)
    good = write_image(tmp_path / "good.jpg", fmt="JPEG", size=(64, 64))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(BadImageError, match="broken.jpg"):
        read_image(broken)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(BadImageError, match="notes.jpg"):
        read_image(text)


def test_is_image_file_any_case() -> None:
    assert is_image_file("a/B.JPEG") and is_image_file("x.Png") and is_image_file("y.webp")
    assert (
        not is_image_file(".DS_Store") and not is_image_file("Thumbs.db") and not is_image_file("labels.txt")
    )


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_photo_is_read_as_displayed_for_every_exif_orientation(
    tmp_path: Path, fmt: str, orientation: int
) -> None:
    shown = block_picture(48, 32)  # 48 wide, 32 high as displayed; stored 32 wide for orientations 5..8
    path = write_oriented(tmp_path / f"photo.{fmt.lower()}", shown, orientation, fmt)
    image = as_hwc(read_image(path))
    assert image.shape == shown.shape
    assert np.abs(image.astype(int) - shown).max() <= (2 if fmt == "JPEG" else 0)
    assert displayed_size(path) == (48, 32)


@pytest.mark.parametrize(
    ("colour_type", "channels"), [(0, [0, 0, 0]), (2, [0, 1, 2]), (4, [0, 0, 0]), (6, [0, 1, 2])]
)
def test_a_16bit_png_keeps_the_high_byte_of_each_sample(
    tmp_path: Path, colour_type: int, channels: list
) -> None:
    # grey, RGB, grey + alpha, RGBA: 1, 3, 2, 4 channels of their own values; alpha is dropped as for 8 bits
    width = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    samples = np.stack([SAMPLES_16 + 4001 * c for c in range(width)], -1).astype(np.uint16)
    path = png_16bit(tmp_path / "deep.png", samples, colour_type)
    expected = (samples[..., channels] >> 8).astype(np.uint8)
    assert np.array_equal(as_hwc(read_image(path)), expected)


def test_16bit_grayscale_through_pil_keeps_the_high_byte_instead_of_clipping(tmp_path: Path) -> None:
    # Pillow writes I;16 PNGs and TIFFs; a 16-bit PGM opens as mode I. Pillow's convert("RGB") would clip at 255.
    expected = np.repeat((SAMPLES_16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    for name in ("grey16.png", "grey16.tif", "grey16.pgm"):
        path = tmp_path / name
        Image.fromarray(SAMPLES_16).save(path)
        assert np.array_equal(as_hwc(read_image(path)), expected), name


def test_pixels_without_an_8bit_scale_are_an_unreadable_image(tmp_path: Path) -> None:
    floats = tmp_path / "float.tif"
    Image.fromarray(SAMPLES_16.astype(np.float32)).save(floats)
    with pytest.raises(BadImageError, match=r"float.tif: floating-point pixels \(mode F\)"):
        read_image(floats)
    wide = tmp_path / "int32.tif"
    Image.fromarray(SAMPLES_16.astype(np.int32) * 100).save(wide)
    with pytest.raises(BadImageError, match=r"int32.tif: 32-bit integer pixels \(700\.\.") as info:
        read_image(wide)
    assert str(info.value).endswith("save it as 8 bits")


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("PA", "TIFF"), ("LA", "WEBP"),
     ("P", "GIF"), ("CMYK", "TIFF"), ("CMYK", "JPEG"), ("L", "TIFF"), ("RGBA", "TIFF"), ("YCbCr", "JPEG")],
)  # fmt: skip
def test_every_8bit_mode_is_read_as_pils_rgb(tmp_path: Path, mode: str, fmt: str) -> None:
    picture = Image.fromarray(block_picture(16, 16)).convert(mode)
    path = tmp_path / f"picture.{fmt.lower()}"
    picture.save(path, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(as_hwc(read_image(path)).astype(int) - expected).max() <= 2  # libjpeg versions may differ


def test_a_corrupt_exif_block_in_a_file_pil_decodes_is_read_as_no_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    corrupt = bytearray(exif.tobytes())
    corrupt[6] = 0  # the TIFF header inside the EXIF block ("MM"): unreadable
    shown = block_picture(16, 8)
    path = tmp_path / "corrupt.webp"
    Image.fromarray(shown).save(path, format="WEBP", exif=bytes(corrupt), lossless=True)
    assert np.array_equal(as_hwc(read_image(path)), shown)  # not an unreadable image
    assert displayed_size(path) == (16, 8)
