"""VOC annotation defects through both loaders of the VOC layout: one tiny VOCdevkit per defect, written under
tmp_path, and the exact outcome under each `data.on_bad_annotation`; and `data.classes` (VOC-layout data with its
own class names) for `data=voc` and `data=voc_seg`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.decoding.palette import write_index_png
from cvtrain.data.splits import build_data
from cvtrain.data.voc.detection import VOCDetection
from cvtrain.data.voc.segmentation import VOCSegmentation
from cvtrain.errors import ConfigError, DataError
from tests.conftest import compose_config

W, H = 40, 30
GOOD = "<object><name>dog</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"


def obj(name: str, xmin: object, ymin: object, xmax: object, ymax: object) -> str:
    box = f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
    return f"<object><name>{name}</name><difficult>0</difficult><bndbox>{box}</bndbox></object>"


def xml(*objects: str) -> str:
    size = f"<size><width>{W}</width><height>{H}</height><depth>3</depth></size>"
    return f"<annotation><filename>x.jpg</filename>{size}{''.join(objects)}</annotation>"


def write_devkit(root: Path, annotations: dict[str, str | None], mask_values: dict[str, int]) -> Path:
    """root/VOC2012 in the real layout, read by both loaders: Annotations (None: no XML), JPEGImages,
    SegmentationClass palette PNGs and the train split of ImageSets/Main and ImageSets/Segmentation."""
    voc = root / "VOC2012"
    for folder in (
        "Annotations",
        "JPEGImages",
        "SegmentationClass",
        "ImageSets/Main",
        "ImageSets/Segmentation",
    ):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for stem, text in annotations.items():
        if text is not None:
            (voc / "Annotations" / f"{stem}.xml").write_text(text)
        Image.fromarray(np.full((H, W, 3), 90, dtype=np.uint8)).save(voc / "JPEGImages" / f"{stem}.jpg")
        mask = np.zeros((H, W), dtype=np.uint8)
        mask[2:20, 2:20] = mask_values.get(stem, 12)
        write_index_png(voc / "SegmentationClass" / f"{stem}.png", mask)
    for folder in ("Main", "Segmentation"):
        (voc / "ImageSets" / folder / "train.txt").write_text("".join(f"{s}\n" for s in annotations))
    return root


# name -> (the XML of image "b" (None: missing), where, what, action) for data=voc; image "a" is always good.
CASES = {
    "XML that does not parse": ("<annotation><object>", "the file", "is not valid XML (", "skipped"),
    "XML missing": (None, "the file", "is missing (listed in ", "skipped"),
    "unknown class name": (xml(obj("unicorn", 2, 2, 9, 9)), "object 0 (unicorn)", "class name 'unicorn' is not one of the dataset's classes (aeroplane, ", "skipped"),
    "inverted box": (xml(obj("cat", 20, 2, 10, 9)), "object 0 (cat)", "empty box XYXY [19.0, 1.0, 10.0, 9.0]", "skipped"),
    "zero-area box": (xml(obj("cat", 5, 6, 9, 5)), "object 0 (cat)", "empty box XYXY [4.0, 5.0, 9.0, 5.0]", "skipped"),
    "box outside the image": (xml(obj("cat", 50, 2, 60, 9)), "object 0 (cat)", "box XYXY [49.0, 1.0, 60.0, 9.0] lies outside the 40x30 image", "skipped"),
    "box that is not numbers": (xml(obj("cat", "a", 2, 9, 9)), "object 0 (cat)", "<bndbox> ['a', '2', '9', '9'] is not numbers", "skipped"),
    "object without bndbox": (xml("<object><name>cat</name></object>"), "object 0 (cat)", "<bndbox> lacks xmin, ymin, xmax or ymax", "skipped"),
    "box partly outside the image": (xml(obj("cat", 30, 2, 45, 9)), "object 0 (cat)", "box XYXY [29.0, 1.0, 45.0, 9.0] sticks out of the 40x30 image", "clipped"),
}  # fmt: skip


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("case", CASES)
def test_each_voc_defect_has_one_outcome(tmp_path: Path, case: str, policy: str) -> None:
    text, where, what, action = CASES[case]
    root = write_devkit(tmp_path, {"a": xml(GOOD), "b": text}, {})
    xml_file = root / "VOC2012" / "Annotations" / "b.xml"
    if action == "skipped" and policy == "error":
        with pytest.raises(DataError, match=re.escape(f"{xml_file}: {where}: {what}")):
            VOCDetection(root=root, years=[2012], split="train", checks=AnnotationLog(policy))
        return
    dataset = VOCDetection(root=root, years=[2012], split="train", checks=AnnotationLog(policy))
    [problem] = dataset.checks.problems
    assert (problem.file, problem.where, problem.action) == (str(xml_file), where, action)
    assert problem.what.startswith(what)
    objects = {r.image_id: len(r.labels) for r in dataset.records}
    if action == "clipped":
        assert objects == {"a": 1, "b": 1}
        assert dataset[1][1]["boxes"].tolist() == [[29.0, 1.0, 40.0, 9.0]]  # clamped to the image
    elif where == "the file":
        assert objects == {"a": 1}  # the image of a skipped XML is left out
    else:
        assert objects == {"a": 1, "b": 0}


@pytest.mark.parametrize("case", CASES)
def test_voc_seg_reads_masks_not_xml(tmp_path: Path, case: str) -> None:
    # data=voc_seg reads the same VOC layout but only its masks: an XML defect changes nothing there.
    root = write_devkit(tmp_path, {"a": xml(GOOD), "b": CASES[case][0]}, {})
    assert VOCSegmentation(root=root, split="train").image_ids == ["a", "b"]


def test_a_voc_split_without_objects_is_an_error_saying_what_was_dropped(tmp_path: Path) -> None:
    root = write_devkit(tmp_path, {"a": xml(obj("unicorn", 2, 2, 9, 9)), "b": xml()}, {})
    with pytest.raises(
        DataError, match=r"split 'train' of VOC2012: no usable object: 2 image\(s\) .*\(1 skipped"
    ):
        VOCDetection(root=root, years=[2012], split="train", checks=AnnotationLog("skip"))


def test_an_empty_voc_seg_split_file_is_an_error(tmp_path: Path) -> None:
    root = write_devkit(tmp_path, {"a": xml(GOOD)}, {})
    (root / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").write_text("\n")
    with pytest.raises(DataError, match=r"Segmentation/train\.txt lists no images"):
        VOCSegmentation(root=root, split="train")


# --------------------------------------------------------------------------------------------- data.classes


def voc_data(root: Path, fmt: str, *overrides: str):
    model = "model=faster_rcnn" if fmt == "voc" else "model=fcn"
    years = ("data.years=[2012]", "data.val_years=[2012]", "data.train_split=train", "data.val_split=train")
    splits = ("data.train_split=train", "data.val_split=train")
    cfg = compose_config(
        model, f"data={fmt}", f"data.root={root}", *(years if fmt == "voc" else splits), *overrides
    )
    return build_data(cfg.data, cfg.aug, task=cfg.model.task, need_train=True)


def test_voc_layout_with_its_own_class_names(tmp_path: Path) -> None:
    annotations = {
        "a": xml(obj("circle", 2, 2, 9, 9), obj("square", 12, 12, 20, 20)),
        "b": xml(obj("square", 3, 3, 8, 8)),
    }
    root = write_devkit(tmp_path, annotations, {"a": 1, "b": 2})
    detection = voc_data(root, "voc", "data.classes=[circle,square]")
    assert detection.class_names == ["circle", "square"] and detection.problems == []
    assert [r.labels.tolist() for r in detection.train.records] == [[0, 1], [1]]
    segmentation = voc_data(root, "voc_seg", "data.classes=[circle,square]")
    assert segmentation.class_names == ["background", "circle", "square"]
    assert [int(m.max()) for _, m, _ in segmentation.val] == [1, 2]  # mask values 1..K, no bad sample
    write_index_png(root / "VOC2012" / "SegmentationClass" / "b.png", np.full((H, W), 3, dtype=np.uint8))
    bad = voc_data(root, "voc_seg", "data.classes=[circle,square]").val[1]
    assert isinstance(bad, BadSample) and "class index 3" in bad.reason  # mask values above K
    # the 20 VOC names by default: 'circle' is an unknown class, named with the option that fixes it
    with pytest.raises(DataError, match=r"a\.xml: object 0 \(circle\): class name 'circle' .*data\.classes="):
        voc_data(root, "voc")
    with pytest.raises(ConfigError, match=r"data\.classes=\['circle', 'circle'\]"):
        voc_data(root, "voc", "data.classes=[circle,circle]")
    with pytest.raises(ConfigError, match="value 0 is always 'background'"):
        voc_data(root, "voc_seg", "data.classes=[background,circle,square]")
