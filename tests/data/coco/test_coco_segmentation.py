"""COCO masks → semantic label maps: polygons, both RLE forms, crowds, overlaps, class maps and the cache."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import DataLoader, Subset

import cvtrain.data.coco.segmentation as coco_seg
from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.class_names import VOC_SEG_CLASSES
from cvtrain.data.coco.segmentation import COCO_NAMES_OF_VOC_CLASSES, COCOSegmentation, annotation_mask
from cvtrain.errors import ConfigError, DataError
from tests.conftest import fixture_dir

H, W = 10, 12
# Real COCO ids and names: person=1, car=3, truck=8 (not a VOC class), dog=18.
CATEGORIES = [
    {"id": 1, "name": "person"},
    {"id": 3, "name": "car"},
    {"id": 8, "name": "truck"},
    {"id": 18, "name": "dog"},
]


def box_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(int)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


PERSON = box_mask(1, 6, 1, 6)
DOG = box_mask(4, 9, 4, 9)  # listed after the person: wins where they overlap
TRUCK = box_mask(
    0, 3, 0, 12
)  # not a VOC class: ignored with classes=voc, painted last (before crowds) with all
CROWD_PERSON = box_mask(8, 10, 0, 3)
CROWD_TRUCK = box_mask(8, 10, 9, 12)
POLYGON_CAR = [[7.0, 6.0, 11.0, 6.0, 11.0, 9.0, 7.0, 9.0], [0.0, 2.0, 3.0, 2.0, 0.0, 5.0]]  # two parts


def make_coco(root: Path) -> tuple[Path, Path]:
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (h, w) in {
        "a.jpg": (H, W),
        "empty.jpg": (H, W),
        "wrong_size.jpg": (H + 1, W),
        "bad.jpg": (H, W),
    }.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images_dir / name, format="PNG")
    images = [
        {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
        {"id": 2, "file_name": "empty.jpg", "height": H, "width": W},
        {"id": 3, "file_name": "wrong_size.jpg", "height": H, "width": W},
        {"id": 4, "file_name": "bad.jpg", "height": H, "width": W},
    ]

    def ann(ann_id, image_id, category_id, segmentation, iscrowd=0):
        return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
                "iscrowd": iscrowd, "area": 1.0, "bbox": [0, 0, 1, 1]}  # fmt: skip

    annotations = [
        ann(10, 1, 1, uncompressed_rle(PERSON)),
        ann(11, 1, 18, compressed_rle(DOG)),
        ann(12, 1, 8, compressed_rle(TRUCK)),
        ann(13, 1, 1, uncompressed_rle(CROWD_PERSON), iscrowd=1),
        ann(14, 1, 8, uncompressed_rle(CROWD_TRUCK), iscrowd=1),
        ann(15, 1, 3, POLYGON_CAR),
        ann(16, 3, 1, uncompressed_rle(PERSON)),
    ]
    ann_file = root / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return ann_file, images_dir


def car_mask() -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(POLYGON_CAR, H, W))).astype(bool)


def expected_label_map(labels: dict[str, int]) -> np.ndarray:
    """Painted by hand in file order; crowds of kept classes last, as 255."""
    out = np.zeros((H, W), dtype=np.uint8)
    out[PERSON] = labels["person"]
    out[DOG] = labels["dog"]
    if "truck" in labels:
        out[TRUCK] = labels["truck"]
    out[car_mask()] = labels["car"]
    out[CROWD_PERSON] = 255
    if "truck" in labels:
        out[CROWD_TRUCK] = 255
    return out


def test_polygon_rasterisation_matches_pycocotools():
    mask = annotation_mask(POLYGON_CAR, H, W)
    assert mask.dtype == bool and mask[7, 8] and mask[3, 0] and not mask[0, 0] and not mask[2, 2]
    assert np.array_equal(mask, car_mask())


def test_rle_forms_decode_exactly():
    assert np.array_equal(annotation_mask(uncompressed_rle(DOG), H, W), DOG)
    assert np.array_equal(annotation_mask(compressed_rle(DOG), H, W), DOG)
    with pytest.raises(ValueError, match="size"):
        annotation_mask(uncompressed_rle(DOG), H + 1, W)


def test_voc_classes_overlap_order_and_crowd(tmp_path):
    ann_file, images_dir = make_coco(tmp_path)
    dataset = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="voc")
    assert dataset.class_names == list(VOC_SEG_CLASSES) and dataset.num_classes == 21 and len(dataset) == 4
    image, mask, meta = dataset[0]
    voc = {"person": 15, "dog": 12, "car": 7}
    assert torch.equal(mask, torch.from_numpy(expected_label_map(voc)))
    assert mask.dtype == torch.uint8 and image.shape == (3, H, W)
    assert meta == {"image_id": "a", "path": str(images_dir / "a.jpg"), "orig_size": (H, W)}
    # A crowd of a dropped class is no crowd at all: what lies under it keeps its label.
    assert mask[CROWD_TRUCK & ~car_mask()].eq(0).all() and mask[CROWD_TRUCK & car_mask()].eq(7).all()
    assert dataset[1][1].eq(0).all()  # image without annotations: all background


def test_all_classes_contiguous_in_category_id_order(tmp_path):
    ann_file, images_dir = make_coco(tmp_path)
    dataset = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="all")
    assert dataset.class_names == ["background", "person", "car", "truck", "dog"]
    _, mask, _ = dataset[0]
    assert torch.equal(
        mask, torch.from_numpy(expected_label_map({"person": 1, "car": 2, "truck": 3, "dog": 4}))
    )


def test_bad_annotations_become_bad_samples(tmp_path):
    ann_file, images_dir = make_coco(tmp_path)
    dataset = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="voc")
    wrong_size = dataset[2]
    assert isinstance(wrong_size, BadSample)
    assert "wrong_size.jpg" in wrong_size.reason and "instances.json" in wrong_size.reason
    assert "10x12" in wrong_size.reason and "11x12" in wrong_size.reason


def test_drop_empty_and_config_errors(tmp_path):
    ann_file, images_dir = make_coco(tmp_path)
    dataset = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="voc", drop_empty=True)
    assert [dataset.coco.imgs[i]["file_name"] for i in dataset.image_ids] == ["a.jpg", "wrong_size.jpg"]
    with pytest.raises(ConfigError, match="data.classes"):
        COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="coco")
    with pytest.raises(DataError, match="missing.json"):
        COCOSegmentation(ann_file=tmp_path / "missing.json", image_dir=images_dir)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        COCOSegmentation(ann_file=tmp_path / "broken.json", image_dir=images_dir)


def test_cache_is_written_reused_and_keyed_by_classes(tmp_path, monkeypatch):
    ann_file, images_dir = make_coco(tmp_path)
    cache = tmp_path / "cache"
    first = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="voc", cache_dir=cache)
    mask = first[0][1]
    cached = first.cache_folder / "1.png"
    assert cached.is_file()

    def no_rasterising(*args, **kwargs):
        raise AssertionError("rasterised again despite the cache")

    monkeypatch.setattr(coco_seg, "rasterize", no_rasterising)
    second = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="voc", cache_dir=cache)
    assert second.cache_folder == first.cache_folder and torch.equal(second[0][1], mask)
    monkeypatch.undo()

    all_classes = COCOSegmentation(ann_file=ann_file, image_dir=images_dir, classes="all", cache_dir=cache)
    assert all_classes.cache_folder != first.cache_folder
    assert 3 in all_classes[0][1].unique()  # the truck: a label only the "all" class map has

    cached.write_bytes(b"truncated")  # a damaged cache entry is rebuilt, not reported as bad data
    assert torch.equal(second[0][1], mask) and cached.stat().st_size > len(b"truncated")


def test_cache_written_by_several_workers(tmp_path):
    ann_file, images_dir = make_coco(tmp_path)
    dataset = COCOSegmentation(
        ann_file=ann_file, image_dir=images_dir, classes="voc", cache_dir=tmp_path / "c"
    )
    # Both workers rasterise and write the same files at once; every read must see a whole mask.
    loader = DataLoader(Subset(dataset, [0, 1] * 8), batch_size=1, num_workers=2, collate_fn=list)
    masks = [batch[0][1] for batch in loader]
    assert all(torch.equal(m, masks[i % 2]) for i, m in enumerate(masks))
    assert sorted(p.name for p in dataset.cache_folder.iterdir()) == [
        "1.png",
        "2.png",
    ]  # no temporary files left


def test_real_coco_sample(tmp_path):
    root = fixture_dir("coco-sample")
    ann_file = root / "annotations.json"
    coco = COCO(str(ann_file))
    assert set(COCO_NAMES_OF_VOC_CLASSES) <= {c["name"] for c in coco.cats.values()}  # COCO's own spelling
    voc = COCOSegmentation(ann_file=ann_file, image_dir=root / "images", classes="voc", cache_dir=tmp_path)
    by_file = {coco.imgs[i]["file_name"]: n for n, i in enumerate(voc.image_ids)}
    # A single motorcycle → VOC "motorbike" (14), exactly pycocotools' own mask of that annotation.
    _, mask, meta = voc[by_file["000000343934.jpg"]]
    (motorcycle,) = coco.loadAnns(coco.getAnnIds(imgIds=343934))
    assert meta["orig_size"] == (480, 640)
    assert torch.equal(mask, torch.from_numpy(coco.annToMask(motorcycle) * 14))
    # Bottles (COCO 44 → VOC 5) with a crowd RLE of bottles → 255.
    _, mask, _ = voc[by_file["000000464689.jpg"]]
    assert set(mask.unique().tolist()) == {0, 5, 255}
    (crowd,) = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=464689)) if a["iscrowd"]]
    assert mask[torch.from_numpy(coco.annToMask(crowd).astype(bool))].eq(255).all()
    every = COCOSegmentation(ann_file=ann_file, image_dir=root / "images", classes="all")
    assert every.num_classes == 81 and every.class_names[40] == "bottle"
    assert set(every[by_file["000000464689.jpg"]][1].unique().tolist()) == {0, 40, 255}
    assert every[by_file["000000000089.jpg"]][1].eq(0).all()  # the image without annotations
