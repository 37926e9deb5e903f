from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvtrain.data.images import BadImageError, is_image_file, read_image
from tests.conftest import write_image


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
