"""VOCDetection on tiny VOCdevkit trees written in the real layout, and on the real voc-sample fixture."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.annotations.class_names import VOC_CLASSES
from cvtrain.data.voc.detection import VOCDetection
from cvtrain.errors import DataError
from tests.conftest import block_picture, fixture_dir, write_oriented

# (name, xmin, ymin, xmax, ymax, difficult) as written in the XML (1-based corners)
Obj = tuple[str, float, float, float, float, int]


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


def write_xml(path: Path, objects: list[Obj], size: tuple[int, int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    size_xml = (
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    )
    objs = "".join(
        f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for n, x0, y0, x1, y1, d in objects
    )
    path.write_text(
        f"<annotation><folder>VOC</folder><filename>{path.stem}.jpg</filename>{size_xml}{objs}</annotation>"
    )


def write_voc(
    root: Path, year: int, images: dict[str, list[Obj]], splits: dict[str, list[str]], size=(40, 30)
) -> Path:
    year_dir = root / f"VOC{year}"
    for stem, objects in images.items():
        write_xml(year_dir / "Annotations" / f"{stem}.xml", objects, size)
        write_image(year_dir / "JPEGImages" / f"{stem}.jpg", *size)
    main = year_dir / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split, stems in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    images = {
        "000001": [("dog", 1, 1, 10, 20, 0), ("person", 5, 6, 25.5, 30, 1)],
        "000002": [("cat", 11, 2, 40, 12, 0)],
    }
    return write_voc(tmp_path / "VOCdevkit", 2007, images, {"train": ["000001", "000002"], "val": ["000002"]})


def test_boxes_are_shifted_to_continuous_zero_based_pixels(voc_root: Path) -> None:
    dataset = VOCDetection(root=voc_root, years=[2007], split="train")
    image, target, meta = dataset[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 30, 40)
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and boxes.canvas_size == (30, 40)
    assert boxes.dtype == torch.float32
    # XML (1, 1, 10, 20) -> (0, 0, 10, 20); the difficult person is not a training target by default
    assert boxes.tolist() == [[0.0, 0.0, 10.0, 20.0]]
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [VOC_CLASSES.index("dog")]
    assert meta == {
        "image_id": "000001",
        "path": str(voc_root / "VOC2007/JPEGImages/000001.jpg"),
        "orig_size": (30, 40),
    }


def test_difficult_objects_are_kept_in_records_and_optionally_in_targets(voc_root: Path) -> None:
    dataset = VOCDetection(root=voc_root, years=[2007], split="train", use_difficult=True)
    _, target, _ = dataset[0]
    assert target["labels"].tolist() == [11, 14]
    assert target["boxes"].tolist()[1] == [4.0, 5.0, 25.5, 30.0]  # fractional corner kept
    record = VOCDetection(root=voc_root, years=[2007], split="train").records[0]
    assert record.difficult.tolist() == [False, True]
    np.testing.assert_array_equal(record.boxes, [[0, 0, 10, 20], [4, 5, 25.5, 30]])
    assert (record.width, record.height) == (40, 30)


def test_class_names_are_the_standard_twenty_in_order(voc_root: Path) -> None:
    dataset = VOCDetection(root=voc_root, years=[2007], split="val")
    assert (
        dataset.class_names[:3] == ["aeroplane", "bicycle", "bird"] and dataset.class_names[-1] == "tvmonitor"
    )
    assert len(dataset.class_names) == 20 and len(dataset) == 1
    assert dataset.class_names.index("diningtable") == 10


def test_years_concatenate(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit"
    write_voc(root, 2007, {"000005": [("car", 1, 1, 5, 5, 0)]}, {"trainval": ["000005"]})
    write_voc(
        root, 2012, {"2008_000001": [("bus", 2, 2, 9, 9, 0)]}, {"trainval": ["2008_000001"]}, size=(50, 20)
    )
    dataset = VOCDetection(root=root, years=[2007, 2012], split="trainval")
    assert [r.image_id for r in dataset.records] == ["000005", "2008_000001"]
    assert dataset.aspect_ratios() == [40 / 30, 50 / 20]
    assert dataset[1][2]["orig_size"] == (20, 50)


def test_transforms_move_the_boxes(voc_root: Path) -> None:
    dataset = VOCDetection(
        root=voc_root, years=[2007], split="train", transforms=v2.RandomHorizontalFlip(p=1.0)
    )
    image, target, _ = dataset[1]
    assert image.shape == (3, 30, 40)
    # (10, 1, 40, 12) flipped in a 40-wide image -> (0, 1, 30, 12)
    assert target["boxes"].tolist() == [[0.0, 1.0, 30.0, 12.0]]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (("dog", 10, 5, 4, 9, 0), "empty box"),
        (("cat", 50, 40, 60, 45, 0), "outside"),
        (("cow", 3, 3, 3, 9, 0), ""),
    ],
)
def test_unusable_boxes_are_skipped_and_reported(tmp_path: Path, caplog, bad: Obj, reason: str) -> None:
    root = write_voc(tmp_path, 2007, {"a": [("dog", 1, 1, 5, 5, 0), bad]}, {"train": ["a"]})
    with caplog.at_level(logging.WARNING):
        dataset = VOCDetection(root=root, years=[2007], split="train", checks=AnnotationLog("skip"))
    if bad[1] == bad[3]:  # xmin == xmax is one pixel wide in the devkit's convention: a real box
        assert dataset.checks.problems == [] and len(dataset.records[0].labels) == 2
        return
    [problem] = dataset.checks.problems
    assert (
        problem.file.endswith("a.xml") and problem.where == f"object 1 ({bad[0]})" and reason in problem.what
    )
    assert problem.action == "skipped"
    assert dataset.records[0].labels.tolist() == [VOC_CLASSES.index("dog")]
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "a.xml: object 1" in caplog.text


def test_boxes_sticking_out_are_clamped_in_targets_but_not_in_records(tmp_path: Path) -> None:
    root = write_voc(tmp_path, 2007, {"a": [("dog", 30, 20, 45, 33, 0)]}, {"train": ["a"]})
    dataset = VOCDetection(root=root, years=[2007], split="train")
    assert dataset.records[0].boxes.tolist() == [[29, 19, 45, 33]]
    assert dataset[0][1]["boxes"].tolist() == [[29, 19, 40, 30]]


def test_missing_pieces_are_data_errors_naming_the_path(voc_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="VOC2012"):
        VOCDetection(root=voc_root, years=[2012], split="train")
    with pytest.raises(DataError, match=r"test\.txt.*splits found there: \['train', 'val'\]"):
        VOCDetection(root=voc_root, years=[2007], split="test")
    with pytest.raises(DataError, match="does not exist"):
        VOCDetection(root=tmp_path / "nowhere", years=[2007], split="train")
    (voc_root / "VOC2007" / "ImageSets" / "Main" / "val.txt").write_text("000002\n000009\n")
    with pytest.raises(DataError, match=r"000009\.xml: the file: is missing"):
        VOCDetection(root=voc_root, years=[2007], split="val")
    shutil.rmtree(voc_root / "VOC2007" / "JPEGImages")
    with pytest.raises(DataError, match="JPEGImages"):
        VOCDetection(root=voc_root, years=[2007], split="train")
    assert len(VOCDetection(root=voc_root, years=[2007], split="train", require_images=False)) == 2


def test_unknown_class_and_malformed_xml_are_data_errors(tmp_path: Path) -> None:
    root = write_voc(tmp_path, 2007, {"a": [("unicorn", 1, 1, 5, 5, 0)]}, {"train": ["a"]})
    with pytest.raises(DataError, match=r"a\.xml: object 0 \(unicorn\): class name 'unicorn' is not one"):
        VOCDetection(root=root, years=[2007], split="train")
    (root / "VOC2007" / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"a\.xml: the file: is not valid XML"):
        VOCDetection(root=root, years=[2007], split="train")


def test_duplicate_ids_across_years_are_a_data_error(tmp_path: Path) -> None:
    for year in (2007, 2012):
        write_voc(tmp_path, year, {"x": [("dog", 1, 1, 5, 5, 0)]}, {"train": ["x"]})
    with pytest.raises(DataError, match="appears twice"):
        VOCDetection(root=tmp_path, years=[2007, 2012], split="train")


def test_xml_is_parsed_once_at_construction(voc_root: Path) -> None:
    dataset = VOCDetection(root=voc_root, years=[2007], split="train")
    shutil.rmtree(voc_root / "VOC2007" / "Annotations")
    assert dataset[0][1]["labels"].tolist() == [11]


def test_unreadable_image_is_a_bad_sample_and_size_comes_from_the_xml(voc_root: Path) -> None:
    (voc_root / "VOC2007" / "JPEGImages" / "000002.jpg").write_bytes(b"not a jpeg")
    dataset = VOCDetection(root=voc_root, years=[2007], split="train")
    sample = dataset[1]
    assert isinstance(sample, BadSample) and sample.path.endswith("000002.jpg")
    assert dataset.aspect_ratios() == [40 / 30, 40 / 30]


def test_size_falls_back_to_the_image_header(tmp_path: Path) -> None:
    root = write_voc(tmp_path, 2007, {"a": [("dog", 1, 1, 5, 5, 0)]}, {"train": ["a"]}, size=(64, 16))
    write_xml(root / "VOC2007" / "Annotations" / "a.xml", [("dog", 1, 1, 5, 5, 0)], size=None)
    assert VOCDetection(root=root, years=[2007], split="train").aspect_ratios() == [4.0]


def test_to_coco_marks_difficult_objects_as_crowd(voc_root: Path) -> None:
    dataset = VOCDetection(root=voc_root, years=[2007], split="train")
    coco = dataset.to_coco()
    assert dataset.coco_image_ids == {"000001": 1, "000002": 2}
    assert coco["images"][0] == {"id": 1, "file_name": "000001.jpg", "width": 40, "height": 30}
    assert [c["id"] for c in coco["categories"]] == list(range(1, 21)) and coco["categories"][11][
        "name"
    ] == "dog"
    dog, person, cat = coco["annotations"]
    assert dog["category_id"] == 12 and dog["bbox"] == [0.0, 0.0, 10.0, 20.0] and dog["iscrowd"] == 0
    assert person["iscrowd"] == 1 and person["bbox"] == [4.0, 5.0, 21.5, 25.0] and person["area"] == 21.5 * 25
    assert cat["image_id"] == 2 and len({a["id"] for a in coco["annotations"]}) == 3


def test_real_voc_sample(tmp_path: Path) -> None:
    source = fixture_dir("voc-sample") / "VOCdevkit"
    root = tmp_path / "VOCdevkit"
    shutil.copytree(source, root)
    main = root / "VOC2012" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("2007_000063\n2011_003353\n")
    dataset = VOCDetection(root=root, years=[2012], split="train")
    assert dataset.checks.problems == []
    first, second = dataset.records
    assert first.labels.tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("chair")]
    np.testing.assert_array_equal(first.boxes, [[122, 114, 379, 275], [74, 0, 428, 375]])
    # <ymin>45.70000076293945</ymin> (fractional) and <actions>/<point> children do not disturb parsing
    assert second.labels.tolist() == [VOC_CLASSES.index("person")]
    assert second.boxes[0].tolist() == pytest.approx([129, 44.70000076293945, 375, 470], abs=1e-12)
    image, target, meta = dataset[1]
    assert image.shape == (3, 500, 375) and meta["orig_size"] == (500, 375)
    assert target["boxes"].tolist()[0] == pytest.approx([129, 44.7, 375, 470], abs=1e-4)
    assert dataset.aspect_ratios() == [500 / 375, 375 / 500]


# A phone's portrait photo: 32 wide and 48 high as displayed, stored 48 x 32 with EXIF orientation 6.
PHONE_SHOWN, PHONE_STORED = (32, 48), (48, 32)  # (width, height)


def phone_voc(root: Path, size: tuple[int, int], obj: Obj) -> Path:
    """A VOC2007 devkit whose one image, in trainval and test, is the phone photo; its XML records `size`."""
    devkit = write_voc(root, 2007, {"phone": [obj]}, {"trainval": ["phone"], "test": ["phone"]}, size=size)
    write_oriented(devkit / "VOC2007" / "JPEGImages" / "phone.jpg", block_picture(*PHONE_SHOWN), 6)
    return devkit


def test_a_phone_photo_keeps_its_boxes_where_the_annotation_put_them(tmp_path: Path) -> None:
    # the dog is at the bottom of the displayed picture: below the stored pixels' 32 rows
    devkit = phone_voc(tmp_path / "VOCdevkit", PHONE_SHOWN, ("dog", 5, 35, 28, 46, 0))
    image, target, meta = VOCDetection(root=devkit, years=[2007], split="trainval")[0]
    assert image.shape == (3, 48, 32) and meta["orig_size"] == (48, 32)
    assert target["boxes"].tolist() == [[4.0, 34.0, 28.0, 46.0]]  # as written, not clipped
    assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - block_picture(*PHONE_SHOWN)).max() <= 2


def test_an_xml_recording_the_unrotated_size_is_a_bad_sample_naming_both_sizes(tmp_path: Path) -> None:
    devkit = phone_voc(tmp_path / "VOCdevkit", PHONE_STORED, ("dog", 5, 5, 28, 30, 0))
    bad = VOCDetection(root=devkit, years=[2007], split="trainval")[0]
    assert isinstance(bad, BadSample) and bad.path == str(devkit / "VOC2007" / "JPEGImages" / "phone.jpg")
    assert bad.reason.startswith(
        "the image is 48x32 (height x width, as displayed after its EXIF orientation 6) but its annotation says "
        "32x48, the size of the stored, unrotated pixels: record the displayed size"
    )


def test_an_xml_without_size_takes_the_displayed_size_from_the_header(tmp_path: Path) -> None:
    devkit = phone_voc(tmp_path / "VOCdevkit", PHONE_SHOWN, ("dog", 5, 35, 28, 46, 0))
    write_xml(devkit / "VOC2007" / "Annotations" / "phone.xml", [("dog", 5, 35, 28, 46, 0)], None)
    dataset = VOCDetection(root=devkit, years=[2007], split="trainval")
    assert (dataset.records[0].width, dataset.records[0].height) == PHONE_SHOWN
    assert dataset[0][1]["boxes"].tolist() == [[4.0, 34.0, 28.0, 46.0]]
