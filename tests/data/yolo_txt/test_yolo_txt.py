"""`data=yolo_txt` on tiny datasets written in the Ultralytics layout: data.yaml, images/{train,val}, labels/*.txt."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from cvtrain.contracts.batch import BadSample, Batch
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.splits import build_data
from cvtrain.data.yolo_txt.detection import YoloTxtDetection
from cvtrain.data.yolo_txt.labels import read_data_yaml
from cvtrain.errors import DataError
from cvtrain.metrics.detection import CombinedEvaluator, detection_evaluator
from tests.conftest import block_picture, compose_config, write_image, write_oriented

SIZE = (40, 30)  # width, height of every test image


def write_yolo(
    root: Path,
    train: dict[str, str | None],
    val: dict[str, str | None],
    names_yaml: str = "names: [cat, dog]",
    path_line: str = "path: .",
) -> Path:
    """DIR/data.yaml plus images/<split>/<name> and labels/<split>/<stem>.txt (None: no label file)."""
    for split, files in (("train", train), ("val", val)):
        for name, text in files.items():
            write_image(
                root / "images" / split / name, size=SIZE, fmt="PNG" if name.endswith(".png") else "JPEG"
            )
            if text is not None:
                label = root / "labels" / split / Path(name).with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(text)
    (root / "data.yaml").write_text(f"{path_line}\ntrain: images/train\nval: images/val\n{names_yaml}\n")
    return root


def clean(root: Path, **kwargs: str) -> Path:
    return write_yolo(
        root,
        train={"a.jpg": "0 0.5 0.5 0.5 0.4\n1 0.25 0.25 0.1 0.2\n", "bg.jpg": None, "empty.png": ""},
        val={"v.jpg": "1 0.5 0.5 0.5 0.5\n"},
        **kwargs,
    )


def split(root: Path, name: str = "train", policy: str = "error") -> YoloTxtDetection:
    return YoloTxtDetection(
        layout=read_data_yaml(root / "data.yaml"), split=name, checks=AnnotationLog(policy)
    )


def test_boxes_become_pixel_corners_and_backgrounds_are_kept(tmp_path: Path) -> None:
    train = split(clean(tmp_path))
    assert train.class_names == ["cat", "dog"] and len(train) == 3
    by_id = {r.image_id: r for r in train.records}
    assert set(by_id) == {"images/train/a", "images/train/bg", "images/train/empty"}
    a = by_id["images/train/a"]
    np.testing.assert_allclose(a.boxes, [[10, 9, 30, 21], [8, 4.5, 12, 10.5]])
    assert a.labels.tolist() == [0, 1] and (a.width, a.height) == SIZE
    assert len(by_id["images/train/bg"].labels) == 0 and len(by_id["images/train/empty"].labels) == 0
    assert train.checks.problems == []
    image, target, meta = train[train.samples.index(a)]
    assert image.shape == (3, 30, 40) and meta["image_id"] == "images/train/a"
    torch.testing.assert_close(target["boxes"], torch.tensor([[10, 9, 30, 21], [8, 4.5, 12, 10.5]]))


@pytest.mark.parametrize(
    ("names_yaml", "path_line"),
    [
        ("names:\n  0: cat\n  1: dog", "path: ."),
        ("names: {1: dog, 0: cat}\nnc: 2", ""),
        ("names: [cat, dog]", "path: ../ds"),
    ],
)
def test_names_as_a_list_or_an_index_map_and_path_relative_to_the_yaml(
    tmp_path: Path, names_yaml: str, path_line: str
) -> None:
    root = clean(tmp_path / "ds", names_yaml=names_yaml, path_line=path_line)
    assert split(root, "val").class_names == ["cat", "dog"]


LINES = [
    "0 0.5 0.5 0.2 0.2",  # 1: fine
    "1 0.5 0.5 0.2",  # 2: four fields
    "dog 0.5 0.5 0.2 0.2",  # 3: not a number
    "2 0.5 0.5 0.2 0.2",  # 4: class 2 of 2 classes
    "0 1.5 0.5 0.2 0.2",  # 5: outside [0, 1]
    "0 0.5 0.5 0 0.2",  # 6: zero width
    "",  # 7: blank lines are ignored
    "1 0.95 0.5 0.2 0.2",  # 8: sticks out: clipped
    "1 1.005 0.5 0.2 0.2",  # 9: within the tolerance: clipped
]


def test_under_skip_every_unusable_line_is_listed_by_file_and_line_and_the_rest_kept(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "\n".join(LINES)}, val={"v.jpg": None})
    train = split(root, policy="skip")
    label = str(tmp_path / "labels" / "train" / "a.txt")
    problems = train.checks.problems
    assert [(p.file, p.where, p.action) for p in problems] == [
        *((label, f"line {n}", "skipped") for n in (2, 3, 4, 5, 6)),
        *((label, f"line {n}", "clipped") for n in (8, 9)),
    ]
    assert "4 fields" in problems[0].what
    assert (
        "0..1" in problems[2].what
        and "outside [0, 1]" in problems[3].what
        and "empty box" in problems[4].what
    )
    (record,) = train.records
    assert record.labels.tolist() == [0, 1, 1]
    np.testing.assert_allclose(record.boxes[1], [34, 12, 40, 18])  # x1 clipped at the image's 40 px


def test_under_the_default_policy_the_first_bad_line_stops_naming_file_and_line(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "\n".join(LINES)}, val={"v.jpg": None})
    with pytest.raises(DataError, match=r"labels/train/a\.txt: line 2: '1 0.5 0.5 0.2' has 4 fields"):
        split(root)


def test_the_builder_lists_the_problems_of_both_splits(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "0 0.5 0.5 0.2"}, val={"v.jpg": "5 0.5 0.5 0.2 0.2"})
    cfg = compose_config("data=yolo_txt", f"data.root={root}", "model=yolo", "data.on_bad_annotation=skip")
    splits = build_data(cfg.data, cfg.aug, task="detection", need_train=True)
    assert [Path(p.file).parent.name for p in splits.problems] == ["train", "val"]


def test_an_unreadable_image_is_a_bad_sample_and_left_out_of_the_ground_truth(tmp_path: Path) -> None:
    root = clean(tmp_path)
    (root / "images" / "val" / "broken.jpg").write_bytes(b"not a jpeg")
    val = split(root, "val")
    assert len(val) == 2 and len(val.records) == 1
    bad = val[[i for i, s in enumerate(val.samples) if isinstance(s, BadSample)][0]]
    assert isinstance(bad, BadSample) and bad.path.endswith("broken.jpg")
    assert len(val.coco_ground_truth().coco.imgs) == 1


def test_perfect_predictions_score_one_with_voc_and_coco_ap(tmp_path: Path) -> None:
    data = split(clean(tmp_path))
    evaluator, headline = detection_evaluator(data)
    assert headline == "voc_map" and isinstance(evaluator, CombinedEvaluator)
    for index in range(len(data)):
        record = data.samples[index]
        prediction = {
            "boxes": torch.as_tensor(record.boxes, dtype=torch.float32),
            "scores": torch.ones(len(record.labels)),
            "labels": torch.as_tensor(record.labels),
        }
        evaluator.update(Batch(images=[], targets=[], meta=[{"image_id": record.image_id}]), [prediction])
    metrics = evaluator.compute()
    assert metrics["voc_map"] == pytest.approx(1.0) and metrics["map"] == pytest.approx(1.0)


def test_the_builder_reads_both_splits_through_the_config(tmp_path: Path) -> None:
    cfg = compose_config("data=yolo_txt", f"data.root={clean(tmp_path)}", "model=faster_rcnn")
    splits = build_data(cfg.data, cfg.aug, task="detection", need_train=True)
    assert splits.class_names == ["cat", "dog"] and len(splits.train) == 3 and len(splits.val) == 1


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: images/train\nval: images/val\nnames: {0: cat, x: dog}", "must be class indices"),
        ("train: images/train\nval: images/val\nnames: [cat]\nnc: 2", "nc is 2"),
        ("train: images/train\nval: images/nowhere\nnames: [cat]", "images/nowhere"),
        ("train: images/train\nnames: [cat]", "`val` is missing"),
        ("train: [images/train\n", "not readable YAML"),
    ],
)
def test_a_wrong_data_yaml_is_a_data_error_naming_it(tmp_path: Path, yaml_text: str, message: str) -> None:
    clean(tmp_path)
    (tmp_path / "data.yaml").write_text(yaml_text)
    with pytest.raises(DataError, match="data.yaml") as info:
        read_data_yaml(tmp_path / "data.yaml")
    assert message in str(info.value)


def test_a_missing_data_yaml_says_what_the_layout_is(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Ultralytics layout"):
        read_data_yaml(tmp_path / "data.yaml")


def test_a_split_without_any_label_file_warns_where_they_were_looked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": None, "b.jpg": None}, val={"v.jpg": "0 0.5 0.5 0.2 0.2"})
    with caplog.at_level(logging.WARNING):
        assert len(split(root).records) == 2
        split(root, "val")
    (message,) = [r.getMessage() for r in caplog.records]
    assert "no label file for any of the 2 train images" in message
    assert str(tmp_path / "labels" / "train" / "a.txt") in message


def test_a_split_may_be_a_txt_list_of_images_relative_to_the_list(tmp_path: Path) -> None:
    root = clean(tmp_path)
    (root / "val.txt").write_text("images/train/a.jpg\n\n./images/val/v.jpg\n")
    (root / "data.yaml").write_text("train: [images/train]\nval: val.txt\nnames: [cat, dog]\n")
    val = split(root, "val")
    assert [r.image_id for r in val.records] == ["images/train/a", "images/val/v"]
    assert [r.labels.tolist() for r in val.records] == [[0, 1], [1]]


def test_normalised_boxes_of_a_phone_photo_are_of_the_displayed_picture(tmp_path: Path) -> None:
    # 32 wide and 48 high as displayed, stored 48 x 32 with EXIF orientation 6; the cat fills the bottom half
    root = write_yolo(tmp_path, train={"phone.jpg": "0 0.5 0.75 1.0 0.5\n"}, val={"v.jpg": None})
    write_oriented(root / "images" / "train" / "phone.jpg", block_picture(32, 48), 6)
    image, target, _ = split(root)[0]
    assert image.shape == (3, 48, 32) and target["boxes"].tolist() == [[0.0, 24.0, 32.0, 48.0]]


# ------------------------------------------------------------------------------------ YOLO-seg polygon lines

# A triangle (0.25, 0.2) (0.75, 0.2) (0.5, 0.8) on the 40 x 30 image: (10, 6) (30, 6) (20, 24) in pixels.
TRIANGLE = "0 0.25 0.2 0.75 0.2 0.5 0.8"


def masked(root: Path, name: str = "train", policy: str = "error") -> YoloTxtDetection:
    return YoloTxtDetection(
        layout=read_data_yaml(root / "data.yaml"), split=name, checks=AnnotationLog(policy), masks=True
    )


def test_a_polygon_line_is_an_object_whose_box_is_the_polygons_extent(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": f"{TRIANGLE}\n1 0.5 0.5 0.5 0.4\n"}, val={"v.jpg": None})
    (record,) = split(root).records
    assert record.labels.tolist() == [0, 1] and record.polygons is None  # a box-only model: no masks
    np.testing.assert_allclose(record.boxes, [[10, 6, 30, 24], [10, 9, 30, 21]])
    _, target, _ = split(root)[0]
    assert "masks" not in target


def test_for_instance_segmentation_a_polygon_is_the_objects_mask(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": TRIANGLE}, val={"v.jpg": TRIANGLE})
    data = masked(root)
    (record,) = data.records
    assert record.polygons == ([10.0, 6.0, 30.0, 6.0, 20.0, 24.0],)
    image, target, _ = data[0]
    (mask,) = target["masks"]
    assert mask.shape == (30, 40) and mask.dtype == torch.uint8
    assert mask[10, 20] == 1 and mask[20, 20] == 1 and mask[20, 12] == 0 and mask[2, 20] == 0
    # pycocotools' rasterisation: about the triangle's 180 px
    assert 160 <= int(mask.sum()) <= 200
    segmentation = data.coco_ground_truth().coco.anns[1]["segmentation"]
    assert segmentation == [[10.0, 6.0, 30.0, 6.0, 20.0, 24.0]]


POLYGON_LINES = [
    TRIANGLE,  # 1: fine
    "0 0.25 0.2 0.75 0.2 0.5",  # 2: five coordinates
    "0 0.25 0.2 0.75 0.2 0.5 1.8",  # 3: a point outside [0, 1]
    "1 0.1 0.1 0.5 0.5 0.9 0.9",  # 4: three points on one line
    "1 0.2 0.2 0.2 0.2 0.2 0.2 0.2 0.2",  # 5: one point four times
    "0 0.5 0.5",  # 6: one point
    "1 0.5 0.5 0.5 0.4",  # 7: a box: no mask for instance segmentation
]


def test_unusable_polygons_are_listed_by_file_and_line_and_the_rest_kept(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "\n".join(POLYGON_LINES)}, val={"v.jpg": None})
    data = masked(root, policy="skip")
    label = str(tmp_path / "labels" / "train" / "a.txt")
    assert [(p.file, p.where, p.action) for p in data.checks.problems] == [
        (label, f"line {n}", "skipped") for n in range(2, 8)
    ]
    assert [p.what for p in data.checks.problems] == [
        "'0 0.25 0.2 0.75 0.2 0.5' has 6 fields: 5 coordinates, an odd number",
        "coordinates 0.25 0.2 0.75 0.2 0.5 1.8 are outside [0, 1]",
        "the polygon of 3 points encloses no area",
        "the polygon of 4 points encloses no area",
        "'0 0.5 0.5' has 3 fields: too few for a box (5) or a polygon (7 or more)",
        "'1 0.5 0.5 0.5 0.4' is a box, but instance segmentation (model=mask_rcnn) needs each object's outline",
    ]
    (record,) = data.records
    assert record.labels.tolist() == [0] and len(record.polygons) == 1
    assert data[0][1]["masks"].shape == (1, 30, 40)


def test_a_degenerate_polygon_stops_the_run_by_default_naming_file_and_line(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "1 0.1 0.1 0.5 0.5 0.9 0.9"}, val={"v.jpg": None})
    with pytest.raises(
        DataError, match=r"labels/train/a\.txt: line 1: the polygon of 3 points encloses no area"
    ):
        split(root)


def test_a_polygon_sticking_out_of_the_image_is_clipped_and_listed(tmp_path: Path) -> None:
    root = write_yolo(tmp_path, train={"a.jpg": "0 -0.005 0.2 0.5 0.2 0.5 1.005"}, val={"v.jpg": None})
    data = masked(root)
    (record,) = data.records
    assert record.polygons == ([0.0, 6.0, 20.0, 6.0, 20.0, 30.0],)
    np.testing.assert_allclose(record.boxes, [[0, 6, 20, 30]])
    assert [p.action for p in data.checks.problems] == ["clipped"]


def test_perfect_masks_score_one_with_coco_mask_ap(tmp_path: Path) -> None:
    root = write_yolo(
        tmp_path, train={"a.jpg": TRIANGLE}, val={"v.jpg": f"{TRIANGLE}\n1 0.1 0.5 0.4 0.5 0.3 0.9"}
    )
    data = masked(root, "val")
    evaluator, _ = detection_evaluator(data, masks=True)
    (record,) = data.records
    _, target, _ = data[0]
    prediction = {
        "boxes": torch.as_tensor(record.boxes, dtype=torch.float32),
        "scores": torch.ones(len(record.labels)),
        "labels": torch.as_tensor(record.labels),
        "masks": target["masks"].bool(),
    }
    evaluator.update(Batch(images=[], targets=[], meta=[{"image_id": record.image_id}]), [prediction])
    metrics = evaluator.compute()
    assert metrics["segm_map"] == pytest.approx(1.0) and metrics["voc_map"] == pytest.approx(1.0)


def test_a_names_map_may_skip_indices_as_cocos_category_ids_do(tmp_path: Path) -> None:
    names = "names:\n  1: person\n  3: car\n  90: toothbrush"  # LightlyTrain's coco128 keeps COCO's ids
    root = write_yolo(
        tmp_path,
        train={"a.jpg": "90 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.4 0.4\n2 0.5 0.5 0.2 0.2"},
        val={"v.jpg": None},
        names_yaml=names,
    )
    data = split(root, policy="skip")
    assert data.class_names == ["person", "car", "toothbrush"]
    assert data.records[0].labels.tolist() == [2, 1]
    (problem,) = data.checks.problems
    assert problem.what == "class 2 is not a class index of data.yaml `names` (3 of 1..90)"


def test_skip_if_label_file_missing_leaves_unlabelled_images_out_instead_of_as_backgrounds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = clean(tmp_path)
    (root / "data.yaml").write_text((root / "data.yaml").read_text() + "skip_if_label_file_missing: true\n")
    with caplog.at_level(logging.INFO):
        train = split(root)
    assert [r.image_id for r in train.records] == ["images/train/a", "images/train/empty"]
    assert f"{root / 'data.yaml'}: 1 of the 3 train images have no label file: left out" in caplog.text
    (root / "labels" / "val" / "v.txt").unlink()
    with pytest.raises(DataError, match="none of the 1 val images has a label file"):
        split(root, "val")
