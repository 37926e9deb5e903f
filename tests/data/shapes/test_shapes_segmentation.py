"""The shapes data in VOC segmentation layout, read back by the real VOC loader."""

import numpy as np
import torch
from PIL import Image

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.palette import VOC_PALETTE, read_index_png
from cvtrain.data.shapes.scenes import SHAPE_CLASSES
from cvtrain.data.shapes.segmentation import (
    SHAPES_SEGMENTATION_CLASSES,
    ensure_shapes_segmentation,
    void_band,
)
from cvtrain.data.voc.segmentation import VOCSegmentation

PARAMS = dict(image_size=40, train_images=4, val_images=2, seed=3)


def test_void_band_is_two_pixels_across_the_outline():
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True  # a 5x5 square
    band = void_band(mask)
    expected = np.zeros((9, 9), dtype=bool)
    expected[1:8, 1:8] = True  # 1 px outside ...
    expected[3:6, 3:6] = False  # ... and 1 px inside; the 3x3 core keeps its label
    assert np.array_equal(band, expected)


def test_layout_and_loader_round_trip(tmp_path):
    devkit = ensure_shapes_segmentation(tmp_path, **PARAMS)
    assert devkit.name == "VOCdevkit"
    voc = devkit / "VOC2012"
    split_dir = voc / "ImageSets" / "Segmentation"
    train_ids = split_dir.joinpath("train.txt").read_text().split()
    val_ids = split_dir.joinpath("val.txt").read_text().split()
    assert len(train_ids) == 4 and len(val_ids) == 2 and not set(train_ids) & set(val_ids)
    assert split_dir.joinpath("trainval.txt").read_text().split() == train_ids + val_ids
    with Image.open(voc / "SegmentationClass" / f"{train_ids[0]}.png") as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im.getpalette()).reshape(-1, 3), VOC_PALETTE)

    assert SHAPES_SEGMENTATION_CLASSES[1:] == SHAPE_CLASSES and SHAPES_SEGMENTATION_CLASSES[0] == "background"
    for split, ids in (("train", train_ids), ("val", val_ids)):
        dataset = VOCSegmentation(root=devkit, split=split, class_names=SHAPES_SEGMENTATION_CLASSES)
        assert dataset.image_ids == ids and dataset.num_classes == 6
        for index in range(len(dataset)):
            sample = dataset[index]
            assert not isinstance(sample, BadSample)
            image, mask, meta = sample
            assert image.shape == (3, 40, 40) and mask.shape == (40, 40) and meta["orig_size"] == (40, 40)
            values = set(mask.unique().tolist())
            assert 0 in values and 255 in values and values & set(range(1, 6))  # background, void, a shape
            # Every object label sits inside a void outline: its pixels never touch another label directly.
            labelled = (mask != 255) & (mask > 0)
            for dy, dx in ((0, 1), (1, 0)):
                a, b = mask[: 40 - dy, : 40 - dx], mask[dy:, dx:]
                touching = (a != b) & (a != 255) & (b != 255)
                assert not touching.any()
            assert labelled.any()


def test_objects_are_drawn_where_the_mask_says(tmp_path):
    devkit = ensure_shapes_segmentation(tmp_path, **PARAMS)
    dataset = VOCSegmentation(root=devkit, split="train", class_names=SHAPES_SEGMENTATION_CLASSES)
    image, mask, _ = dataset[0]
    # Shapes are coloured far from the background, so object and background pixels differ on average.
    pixels = image.permute(1, 2, 0).float()
    object_mean = pixels[(mask > 0) & (mask != 255)].mean(0)
    background_mean = pixels[mask == 0].mean(0)
    assert (object_mean - background_mean).abs().sum() > 60


def test_deterministic_and_cached(tmp_path):
    first = ensure_shapes_segmentation(tmp_path / "a", **PARAMS)
    second = ensure_shapes_segmentation(tmp_path / "b", **PARAMS)
    name = "train_000001.png"
    assert np.array_equal(
        read_index_png(first / "VOC2012" / "SegmentationClass" / name),
        read_index_png(second / "VOC2012" / "SegmentationClass" / name),
    )
    marker = first / "VOC2012" / "marker"
    marker.write_text("x")
    assert ensure_shapes_segmentation(tmp_path / "a", **PARAMS) == first and marker.exists()  # reused
    other = ensure_shapes_segmentation(tmp_path / "a", **{**PARAMS, "seed": 4})
    assert other != first
    assert not torch.equal(
        torch.from_numpy(read_index_png(other / "VOC2012" / "SegmentationClass" / name)),
        torch.from_numpy(read_index_png(first / "VOC2012" / "SegmentationClass" / name)),
    )
