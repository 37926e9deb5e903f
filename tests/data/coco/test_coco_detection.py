"""COCODetection on a tiny COCO-format dataset written by the test, and on the real coco-sample fixture."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.annotations.coco_api import coco_api_from_dict, load_coco_api
from cvtrain.data.coco.detection import COCODetection
from cvtrain.errors import DataError
from tests.conftest import block_picture, fixture_dir, write_oriented


def ann(ann_id: int, image_id: int, cat: int, bbox: list[float], iscrowd: int = 0) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": iscrowd,
        "segmentation": [],
    }


def tiny_coco() -> dict[str, Any]:
    images = [
        {"id": 7, "file_name": "a.jpg", "width": 40, "height": 30},  # two objects, one sticking out
        {"id": 3, "file_name": "b.jpg", "width": 20, "height": 20},  # only a crowd region
        {"id": 12, "file_name": "c.jpg", "width": 30, "height": 10},  # no annotation at all
        {"id": 20, "file_name": "d.jpg", "width": 20, "height": 20},  # one good box, two unusable
    ]
    annotations = [
        ann(1, 7, 90, [2.5, 3, 10, 12]),
        ann(2, 7, 5, [30, 20, 20, 20]),
        ann(3, 3, 5, [0, 0, 20, 20], iscrowd=1),
        ann(4, 20, 1, [1, 1, 5, 5]),
        ann(5, 20, 1, [4, 4, 0, 6]),
        ann(6, 20, 90, [25, 25, 3, 3]),
    ]
    # categories deliberately out of order and with gaps
    categories = [
        {"id": 90, "name": "toothbrush"},
        {"id": 1, "name": "person"},
        {"id": 5, "name": "airplane"},
    ]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture
def coco_files(tmp_path: Path) -> tuple[Path, Path]:
    data = tiny_coco()
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    for image in data["images"]:
        pixels = np.full((image["height"], image["width"], 3), 120, dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / image["file_name"])
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, image_dir


def make(coco_files: tuple[Path, Path], **kwargs: Any) -> COCODetection:
    """The tiny dataset with its two unusable boxes skipped (data.on_bad_annotation=skip)."""
    ann_file, image_dir = coco_files
    defaults = {"keep_empty": False, "train": False, "checks": AnnotationLog("skip")}
    return COCODetection(ann_file=ann_file, image_dir=image_dir, **{**defaults, **kwargs})


def test_category_ids_map_to_contiguous_labels(coco_files) -> None:
    dataset = make(coco_files)
    assert dataset.cat_id_to_label == {1: 0, 5: 1, 90: 2}
    assert dataset.label_to_cat_id == {0: 1, 1: 5, 2: 90}
    assert dataset.class_names == ["person", "airplane", "toothbrush"]


def test_sample_contract_and_xywh_to_xyxy(coco_files) -> None:
    dataset = make(coco_files)
    assert dataset.image_ids == [3, 7, 12, 20]
    image, target, meta = dataset[1]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 30, 40)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].canvas_size == (30, 40)
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    # [2.5, 3, 10, 12] -> (2.5, 3, 12.5, 15); [30, 20, 20, 20] sticks out of the 40x30 image and is clamped
    assert target["boxes"].tolist() == [[2.5, 3.0, 12.5, 15.0], [30.0, 20.0, 40.0, 30.0]]
    assert target["labels"].tolist() == [2, 1]
    assert meta == {"image_id": 7, "path": str(coco_files[1] / "a.jpg"), "orig_size": (30, 40)}
    assert dataset.coco.anns[2]["bbox"] == [30, 20, 20, 20]  # the ground truth for COCOeval is untouched


def test_crowd_is_never_a_target(coco_files) -> None:
    _, target, meta = make(coco_files)[0]
    assert meta["image_id"] == 3 and target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


@pytest.mark.parametrize(
    ("train", "keep_empty", "expected"),
    [(False, False, [3, 7, 12, 20]), (True, False, [7, 20]), (True, True, [3, 7, 12, 20])],
)
def test_images_without_targets(coco_files, train: bool, keep_empty: bool, expected: list[int]) -> None:
    dataset = make(coco_files, train=train, keep_empty=keep_empty)
    assert dataset.image_ids == expected and len(dataset) == len(expected)
    ratios = {3: 1.0, 7: 40 / 30, 12: 3.0, 20: 1.0}
    assert dataset.aspect_ratios() == [ratios[i] for i in expected]


def test_unusable_boxes_are_skipped_and_reported_once(coco_files, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        dataset = make(coco_files)
    problems = [(p.action, p.where, p.what) for p in dataset.checks.problems]
    assert problems == [
        ("clipped", "annotation id 2 (image id 7)", "box XYXY [30.0, 20.0, 50.0, 40.0] sticks out of the 40x30 image"),
        ("skipped", "annotation id 5 (image id 20)", "empty box XYXY [4.0, 4.0, 4.0, 10.0] (zero or negative width or height)"),
        ("skipped", "annotation id 6 (image id 20)", "box XYXY [25.0, 25.0, 28.0, 28.0] lies outside the 20x20 image"),
    ]  # fmt: skip
    assert len(caplog.records) == 1 and "instances.json" in caplog.text and "annotation id 6" in caplog.text
    _, target, _ = dataset[3]
    assert target["boxes"].tolist() == [[1.0, 1.0, 6.0, 6.0]] and target["labels"].tolist() == [0]
    assert sorted(dataset.coco.anns) == [1, 2, 3, 4]  # what was skipped is not scored either
    with pytest.raises(DataError, match=r"instances\.json: annotation id 5 \(image id 20\): empty box"):
        make(coco_files, checks=AnnotationLog("error"))


def test_transforms_are_applied(coco_files) -> None:
    dataset = make(coco_files, transforms=v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((60, 80))]))
    image, target, meta = dataset[1]
    assert image.shape == (3, 60, 80) and meta["orig_size"] == (30, 40)
    # flip: x -> 40 - x, then scale by 2
    assert target["boxes"].tolist() == [[55.0, 6.0, 75.0, 30.0], [0.0, 40.0, 20.0, 60.0]]


def test_missing_image_is_a_bad_sample(coco_files) -> None:
    (coco_files[1] / "c.jpg").unlink()
    sample = make(coco_files)[2]
    assert isinstance(sample, BadSample) and sample.path.endswith("c.jpg")


def test_file_errors_are_data_errors(coco_files, tmp_path: Path) -> None:
    ann_file, image_dir = coco_files
    with pytest.raises(DataError, match="does not exist"):
        COCODetection(ann_file=tmp_path / "none.json", image_dir=image_dir, keep_empty=False, train=True)
    with pytest.raises(DataError, match="image folder"):
        COCODetection(ann_file=ann_file, image_dir=tmp_path / "none", keep_empty=False, train=True)
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"broken\.json is not valid JSON \(line 1"):
        load_coco_api(tmp_path / "broken.json")
    with pytest.raises(DataError, match="'categories'"):
        coco_api_from_dict({"images": []})
    data = tiny_coco()
    data["annotations"] = [a for a in data["annotations"] if a["id"] not in (5, 6)]
    data["annotations"].append(ann(99, 7, 42, [1, 1, 2, 2]))
    ann_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="annotation id 99.*category_id 42"):
        make(coco_files, checks=AnnotationLog("error"))


def test_pycocotools_prints_are_silenced(coco_files, capsys) -> None:
    make(coco_files)
    assert capsys.readouterr().out == ""


def test_missing_iscrowd_and_area_are_filled() -> None:
    data = tiny_coco()
    data["annotations"] = [a for a in data["annotations"] if a["id"] not in (5, 6)]
    for a in data["annotations"]:
        del a["iscrowd"], a["area"]
    coco = coco_api_from_dict(data)
    assert coco.anns[1]["iscrowd"] == 0 and coco.anns[1]["area"] == 120.0


def test_real_coco_sample() -> None:
    folder = fixture_dir("coco-sample")
    ann_file, image_dir = folder / "annotations.json", folder / "images"
    evaluation = COCODetection(ann_file=ann_file, image_dir=image_dir, keep_empty=False, train=False)
    training = COCODetection(ann_file=ann_file, image_dir=image_dir, keep_empty=False, train=True)
    assert len(evaluation) == 6 and len(training) == 5 and 89 not in training.image_ids
    assert len(evaluation.class_names) == 80 and evaluation.class_names[0] == "person"
    assert evaluation.label_to_cat_id[79] == 90 and evaluation.cat_id_to_label[90] == 79
    assert evaluation.checks.problems == [] and training.checks.problems == []
    index = evaluation.image_ids.index(464689)  # 13 bottles and one crowd region of bottles
    image, target, meta = evaluation[index]
    assert image.shape == (3, 640, 586) and meta["orig_size"] == (640, 586)
    assert len(target["labels"]) == 13 and set(target["labels"].tolist()) == {evaluation.cat_id_to_label[44]}
    x, y, w, h = [507.9, 386.15, 10.1, 29.81]
    assert target["boxes"][0].tolist() == pytest.approx([x, y, x + w, y + h], abs=1e-4)
    for image_id in evaluation.image_ids:
        info = evaluation.coco.imgs[image_id]
        sample = evaluation[evaluation.image_ids.index(image_id)]
        assert sample[2]["orig_size"] == (info["height"], info["width"])


def phone_coco(root: Path, size: tuple[int, int], bbox: list[float]) -> tuple[Path, Path]:
    """(json, image folder) of one phone photo, 32 wide and 48 high as displayed, stored 48 x 32 with EXIF
    orientation 6; its `images` entry records `size` (width, height)."""
    write_oriented(root / "images" / "phone.jpg", block_picture(32, 48), 6)
    image = {"id": 1, "file_name": "phone.jpg", "width": size[0], "height": size[1]}
    data = {"images": [image], "annotations": [ann(1, 1, 1, bbox)], "categories": [{"id": 1, "name": "dog"}]}
    (root / "instances.json").write_text(json.dumps(data))
    return root / "instances.json", root / "images"


def test_a_phone_photo_keeps_its_boxes_where_the_annotation_put_them(tmp_path: Path) -> None:
    files = phone_coco(tmp_path, (32, 48), [4, 34, 24, 12])  # at the bottom: below the stored 32 rows
    image, target, meta = make(files)[0]
    assert image.shape == (3, 48, 32) and meta["orig_size"] == (48, 32)
    assert target["boxes"].tolist() == [[4.0, 34.0, 28.0, 46.0]]  # not zero-height


def test_an_images_entry_with_the_unrotated_size_is_a_bad_sample_naming_both_sizes(tmp_path: Path) -> None:
    files = phone_coco(tmp_path, (48, 32), [4, 4, 24, 12])
    bad = make(files)[0]
    assert isinstance(bad, BadSample) and bad.path == str(tmp_path / "images" / "phone.jpg")
    assert (
        "the image is 48x32 (height x width, as displayed after its EXIF orientation 6) but its "
        in bad.reason
    )
    assert "annotation says 32x48, the size of the stored, unrotated pixels" in bad.reason


def test_an_images_entry_of_another_size_is_a_bad_sample(tmp_path: Path) -> None:
    files = phone_coco(tmp_path, (32, 50), [4, 4, 24, 12])
    bad = make(files)[0]
    assert isinstance(bad, BadSample) and bad.reason == (
        "the image is 48x32 (height x width, as displayed after its EXIF orientation 6) but its annotation says "
        "50x32: correct the annotation's width and height (or replace the image)"
    )
