"""Index PNGs: VOC's palette masks are read as class indices (255 kept), never as colours."""

import numpy as np
import pytest
from PIL import Image

from cvtrain.data.decoding.palette import VOC_PALETTE, colorize, read_index_png, voc_colormap, write_index_png
from cvtrain.errors import DataError
from tests.conftest import fixture_dir


def test_voc_colormap_known_entries():
    # The devkit's colour map: background black, aeroplane dark red, person (15) pink-ish, void cream.
    assert VOC_PALETTE.shape == (256, 3)
    assert VOC_PALETTE[0].tolist() == [0, 0, 0]
    assert VOC_PALETTE[1].tolist() == [128, 0, 0]
    assert VOC_PALETTE[2].tolist() == [0, 128, 0]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in voc_colormap().tolist()}) == 256  # every index has its own colour


def test_real_voc_mask_reads_as_indices_with_void_kept():
    voc_mask = fixture_dir("voc-sample") / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000063.png"
    mask = read_index_png(voc_mask)
    assert mask.dtype == np.uint8 and mask.shape == (375, 500)
    # 2007_000063: a dog (12) and a chair (9) with the void border; colours would give 3-channel data instead.
    assert set(np.unique(mask).tolist()) == {0, 9, 12, 255}
    with Image.open(voc_mask) as im:
        assert np.array_equal(np.asarray(im.getpalette()).reshape(-1, 3)[:256], VOC_PALETTE)


def test_write_then_read_round_trip_keeps_indices_and_void(tmp_path):
    mask = np.array([[0, 1, 20], [255, 255, 7]], dtype=np.int64)
    path = write_index_png(tmp_path / "sub" / "m.png", mask)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert np.array_equal(np.asarray(im.getpalette()).reshape(-1, 3), VOC_PALETTE)
        # The colour of each pixel is the palette entry of its index.
        assert np.array_equal(np.asarray(im.convert("RGB")), VOC_PALETTE[mask])
    assert np.array_equal(read_index_png(path), mask)
    assert [p.name for p in path.parent.iterdir()] == ["m.png"]  # no temporary file left behind


def test_grayscale_index_png_is_read_as_is(tmp_path):
    # SBD's SegmentationClassAug PNGs are grayscale with the indices as values.
    mask = np.array([[0, 3], [15, 255]], dtype=np.uint8)
    Image.fromarray(mask).save(tmp_path / "aug.png")
    assert np.array_equal(read_index_png(tmp_path / "aug.png"), mask)


def test_colour_png_is_rejected_with_file_name(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png.*'RGB'"):
        read_index_png(tmp_path / "rgb.png")


def test_unreadable_png_raises_data_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png"):
        read_index_png(tmp_path / "broken.png")
    with pytest.raises(DataError, match="missing.png"):
        read_index_png(tmp_path / "missing.png")


def test_write_rejects_values_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="0..255"):
        write_index_png(tmp_path / "m.png", np.array([[0, 300]]))


def test_colorize_maps_through_palette():
    mask = np.array([[0, 1], [255, 2]])
    rgb = colorize(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [128, 0, 0] and rgb[1, 0].tolist() == [224, 224, 192]
