"""The shapes detection data: both layouts are written once, agree with each other, and the real loaders read them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.shapes.detection import (
    CROWD_EVERY,
    DIFFICULT_VISIBLE_FRACTION,
    SHAPES_COCO_CATEGORY_IDS,
    ensure_shapes_detection,
    shapes_coco_paths,
    shapes_voc_root,
)
from cvtrain.data.shapes.scenes import SHAPE_CLASSES
from cvtrain.data.voc.detection import VOCDetection

SIZE, TRAIN, VAL = 64, 16, 8


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    return ensure_shapes_detection(cache, image_size=SIZE, train_images=TRAIN, val_images=VAL, seed=0)


def voc(shapes_dir: Path, split: str) -> VOCDetection:
    return VOCDetection(
        root=shapes_voc_root(shapes_dir), years=[2007], split=split, class_names=SHAPE_CLASSES
    )


def coco(shapes_dir: Path, split: str, *, train: bool = False) -> COCODetection:
    ann_file, image_dir = shapes_coco_paths(shapes_dir, split)
    return COCODetection(ann_file=ann_file, image_dir=image_dir, keep_empty=False, train=train)


def test_voc_layout_is_read_by_the_voc_loader(shapes_dir: Path) -> None:
    sizes = {split: len(voc(shapes_dir, split)) for split in ("train", "val", "trainval", "test")}
    assert sizes == {"train": TRAIN, "val": VAL, "trainval": TRAIN + VAL, "test": VAL}
    dataset = voc(shapes_dir, "trainval")
    assert [p for p in dataset.checks.problems if p.action != "clipped"] == []
    assert all(2 <= len(r.labels) <= 6 for r in dataset.records)
    image, target, meta = dataset[0]
    assert image.shape == (3, SIZE, SIZE) and meta["path"].endswith(".jpg")
    assert target["labels"].max() < len(SHAPE_CLASSES)


def test_voc_xml_uses_integer_one_based_corners(shapes_dir: Path) -> None:
    text = (shapes_voc_root(shapes_dir) / "VOC2007" / "Annotations" / "000001.xml").read_text()
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        value = text.split(f"<{tag}>")[1].split("<")[0]
        assert value.isdigit() and 1 <= int(value) <= SIZE
    assert "<xmin>0</xmin>" not in text


def test_difficult_objects_are_the_barely_visible_ones(shapes_dir: Path) -> None:
    dataset = voc(shapes_dir, "trainval")
    train, val = coco(shapes_dir, "train").coco, coco(shapes_dir, "val").coco
    difficult = 0
    for index, record in enumerate(dataset.records, start=1):
        gt = train if index <= TRAIN else val
        if index % CROWD_EVERY == 0:
            continue  # the COCO copy merges the crowd group, so objects do not pair one to one
        areas = [a["area"] for a in gt.imgToAnns[index]]
        assert len(areas) == len(record.labels)
        for area, hard in zip(areas, record.difficult, strict=True):
            assert hard == (area < DIFFICULT_VISIBLE_FRACTION * SIZE * SIZE)
            difficult += int(hard)
    assert difficult >= 1
    assert sum(len(r.labels) - int(r.difficult.sum()) for r in dataset.records) > 0.9 * sum(
        len(r.labels) for r in dataset.records
    )


def test_coco_layout_is_read_by_the_coco_loader(shapes_dir: Path) -> None:
    dataset = coco(shapes_dir, "train")
    assert len(dataset) == TRAIN
    assert dataset.class_names == list(SHAPE_CLASSES)
    assert dataset.label_to_cat_id == dict(enumerate(SHAPES_COCO_CATEGORY_IDS))
    assert sorted(SHAPES_COCO_CATEGORY_IDS) != list(range(1, len(SHAPE_CLASSES) + 1))  # really non-contiguous
    image, _, meta = dataset[0]
    assert image.shape == (3, SIZE, SIZE) and meta["image_id"] == 1
    assert len(coco(shapes_dir, "val")) == VAL


# pycocotools' mask.decode trips numpy 2's __array__ deprecation; the warning is theirs, not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_crowd_regions_group_objects_of_one_class(shapes_dir: Path) -> None:
    crowds = []
    for split in ("train", "val"):
        gt = coco(shapes_dir, split).coco
        crowds += [a for a in gt.dataset["annotations"] if a["iscrowd"]]
    assert len(crowds) >= 2
    for crowd in crowds:
        assert crowd["image_id"] % CROWD_EVERY == 0
        mask = mask_utils.decode(crowd["segmentation"])
        assert mask.shape == (SIZE, SIZE) and mask.sum() == crowd["area"]
        assert mask_utils.toBbox(crowd["segmentation"]).tolist() == crowd["bbox"]
        # the VOC copy has the grouped objects one by one, all inside the crowd box
        record = voc(shapes_dir, "trainval").records[crowd["image_id"] - 1]
        label = SHAPES_COCO_CATEGORY_IDS.index(crowd["category_id"])
        members = record.boxes[record.labels == label]
        x, y, w, h = crowd["bbox"]
        assert len(members) >= 2
        assert members[:, 0].min() == x and members[:, 2].max() == x + w
        assert members[:, 1].min() == y and members[:, 3].max() == y + h


def test_both_layouts_describe_the_same_scenes(shapes_dir: Path) -> None:
    voc_data = voc(shapes_dir, "train")
    coco_data = coco(shapes_dir, "train")
    compared = 0
    for index, record in enumerate(voc_data.records):
        if (index + 1) % CROWD_EVERY == 0:
            continue
        _, target, meta = coco_data[index]
        assert meta["image_id"] == index + 1 and Path(meta["path"]).name == f"{record.image_id}.jpg"
        np.testing.assert_array_equal(target["boxes"].numpy(), record.boxes)
        assert target["labels"].tolist() == record.labels.tolist()
        compared += 1
    assert compared >= TRAIN - TRAIN // CROWD_EVERY
    first_voc = (shapes_voc_root(shapes_dir) / "VOC2007" / "JPEGImages" / "000001.jpg").read_bytes()
    assert first_voc == (shapes_coco_paths(shapes_dir, "train")[1] / "000001.jpg").read_bytes()


def test_cache_is_reused_and_keyed_by_parameters(shapes_dir: Path) -> None:
    cache = shapes_dir.parent
    marker = shapes_dir / "annotations" / "instances_train.json"
    before = marker.stat().st_mtime_ns
    again = ensure_shapes_detection(cache, image_size=SIZE, train_images=TRAIN, val_images=VAL, seed=0)
    assert again == shapes_dir and marker.stat().st_mtime_ns == before
    other = ensure_shapes_detection(cache, image_size=SIZE, train_images=2, val_images=1, seed=0)
    assert (
        other != shapes_dir and len(json.loads(shapes_coco_paths(other, "val")[0].read_text())["images"]) == 1
    )


def test_generation_is_deterministic(tmp_path: Path, shapes_dir: Path) -> None:
    again = ensure_shapes_detection(tmp_path, image_size=SIZE, train_images=TRAIN, val_images=VAL, seed=0)
    for split in ("train", "val"):
        assert (
            shapes_coco_paths(again, split)[0].read_text()
            == shapes_coco_paths(shapes_dir, split)[0].read_text()
        )
    different = ensure_shapes_detection(tmp_path, image_size=SIZE, train_images=TRAIN, val_images=VAL, seed=1)
    assert (
        shapes_coco_paths(different, "val")[0].read_text()
        != shapes_coco_paths(shapes_dir, "val")[0].read_text()
    )
