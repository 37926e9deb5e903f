"""`cvtrain data check`: run_data_check on tiny datasets of every kind written under tmp_path, and two runs of the
real CLI (a clean dataset exits 0 with its counts; a broken one exits 1 naming every bad file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from cvtrain.commands.data_check import run_data_check
from cvtrain.data.decoding.palette import write_index_png
from cvtrain.errors import DataError
from tests.conftest import FAST, REPO, compose_raw, make_imagefolder, run_cli
from tests.data.annotations.test_coco_checks import write as write_coco
from tests.data.coco.test_coco_detection import phone_coco
from tests.data.decoding.test_images import SAMPLES_16
from tests.data.voc.test_voc_detection import PHONE_SHOWN, PHONE_STORED, phone_voc, write_voc
from tests.data.voc.test_voc_segmentation import make_voc as make_voc_seg
from tests.data.yolo_txt.test_yolo_txt import clean, write_yolo

CORRUPT_JPEG = b"\xff\xd8\xff\xe0 truncated"


def check(tmp_path: Path, *overrides: str) -> dict:
    """run_data_check's report; on a DataError the report it wrote is attached to the exception."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    try:
        return run_data_check(
            compose_raw("command=data_check", "data.num_workers=0", *overrides), run_dir, overrides=[]
        )
    except DataError as e:
        report = run_dir / "data_check.json"
        e.report = json.loads(report.read_text()) if report.is_file() else None  # type: ignore[attr-defined]
        raise


def broken_yolo(root: Path) -> Path:
    write_yolo(
        root,
        train={"a.jpg": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n1 0.95 0.5 0.2 0.2\n", "bg.jpg": None},
        val={"v.jpg": "1 0.5 0.5 0.5 0.5\n"},
    )
    (root / "images" / "val" / "broken.jpg").write_bytes(CORRUPT_JPEG)
    return root


def test_a_clean_yolo_dataset_is_counted_per_split_and_class(tmp_path: Path) -> None:
    report = check(tmp_path, "data=yolo_txt", f"data.root={clean(tmp_path / 'ds')}")
    assert report["status"] == "ok" and report["task"] == "detection" and report["problems"] == []
    train, val = report["splits"]["train"], report["splits"]["val"]
    assert (train["images"], train["objects"], train["backgrounds"], train["unreadable"]) == (3, 2, 2, 0)
    assert train["per_class"] == {"cat": {"images": 1, "objects": 1}, "dog": {"images": 1, "objects": 1}}
    assert val["per_class"]["dog"] == {"images": 1, "objects": 1}
    assert json.loads((tmp_path / "run" / "data_check.json").read_text()) == report


def test_bad_lines_and_unreadable_images_are_all_listed_with_what_fit_does(tmp_path: Path) -> None:
    root = broken_yolo(tmp_path / "ds")
    with pytest.raises(DataError, match="2 problem") as info:
        check(tmp_path, "data=yolo_txt", f"data.root={root}", "data.on_bad_image=skip")
    rows = {(Path(r["file"]).name, r["where"]): r for r in info.value.report["problems"]}
    assert set(rows) == {("a.txt", "line 2"), ("a.txt", "line 3"), ("broken.jpg", "val split")}
    assert rows["a.txt", "line 2"]["fit"] == "stops the run"
    assert rows["a.txt", "line 3"]["fit"] == "clipped"  # listed, but not an error
    assert rows["broken.jpg", "val split"]["fit"] == "skipped"
    assert info.value.report["splits"]["val"]["unreadable"] == 1


def test_a_box_that_is_only_clipped_is_listed_but_passes(tmp_path: Path) -> None:
    root = write_yolo(
        tmp_path / "ds", train={"a.jpg": "0 0.95 0.5 0.2 0.2"}, val={"v.jpg": "1 0.5 0.5 0.2 0.2"}
    )
    report = check(tmp_path, "data=yolo_txt", f"data.root={root}", "data.on_bad_annotation=skip")
    assert report["status"] == "ok" and [r["fit"] for r in report["problems"]] == ["clipped"]


def test_voc_an_unreadable_image_and_an_unparseable_xml_are_both_listed(tmp_path: Path) -> None:
    devkit = write_voc(
        tmp_path / "VOCdevkit",
        2007,
        {stem: [("dog", 5, 5, 20, 20, 0)] for stem in ("000001", "000002", "000003", "000004")},
        {"trainval": ["000001", "000002"], "test": ["000003", "000004"]},
    )
    (devkit / "VOC2007" / "JPEGImages" / "000001.jpg").write_bytes(CORRUPT_JPEG)
    (devkit / "VOC2007" / "Annotations" / "000004.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match="2 problem") as info:
        check(tmp_path, "data=voc", f"data.root={devkit}", "data.years=[2007]")
    rows = {Path(r["file"]).name: r for r in info.value.report["problems"]}
    assert set(rows) == {"000001.jpg", "000004.xml"}
    assert rows["000001.jpg"]["where"] == "train split"
    assert rows["000004.xml"]["fit"] == "stops the run"
    assert info.value.report["splits"]["val"]["images"] == 1  # what fit would read under skip


def test_imagefolder_counts_images_per_class(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "tree", per_class=2)
    (root / "val" / "n02" / "extra.JPEG").write_bytes(b"")
    with pytest.raises(DataError, match="1 problem") as info:
        check(tmp_path, "data=imagefolder", f"data.root={root}")
    report = info.value.report
    assert report["task"] == "classification"
    assert report["splits"]["train"]["per_class"]["n01"] == {"images": 2}
    assert report["splits"]["val"]["images"] == 7 and report["problems"][0]["file"].endswith("extra.JPEG")


def test_segmentation_masks_of_the_wrong_size_or_values_are_listed(tmp_path: Path) -> None:
    devkit = make_voc_seg(tmp_path, {"train": ["a", "b"], "val": ["c"]})
    masks = devkit / "VOC2012" / "SegmentationClass"
    write_index_png(masks / "a.png", np.zeros((3, 3), dtype=np.uint8))  # the image is 6x8
    write_index_png(masks / "c.png", np.full((6, 8), 40, dtype=np.uint8))  # 40: neither a class nor 255
    with pytest.raises(DataError, match="2 problem") as info:
        check(tmp_path, "data=voc_seg", f"data.root={devkit}")
    report = info.value.report
    assert report["task"] == "segmentation" and report["splits"]["train"]["images"] == 2
    assert sorted(Path(r["file"]).name for r in report["problems"]) == ["a.jpg", "c.png"]


def test_each_format_names_the_tasks_it_serves_in_its_schema() -> None:
    # data check reads them from the composed config: a new format's schema says it, no table to edit
    model_tasks = {
        compose_raw(f"model={p.stem}").model.task for p in (REPO / "conf" / "model").glob("*.yaml")
    }
    served = {
        p.stem: OmegaConf.get_type(compose_raw(f"data={p.stem}").data).TASKS
        for p in (REPO / "conf" / "data").glob("*.yaml")
    }
    assert all(set(tasks) <= model_tasks for tasks in served.values())
    assert served["coco"] == ("detection", "instance_segmentation")
    assert served["imagenet"] == ("classification",)
    assert served["shapes"] == () == served["synthetic"]  # any task: the model's


def test_synthetic_data_has_nothing_to_check(tmp_path: Path) -> None:
    assert check(tmp_path, "data=synthetic") == {"status": "ok", "data": "synthetic"}


def test_the_cli_exits_0_on_clean_data_printing_the_counts(tmp_path: Path) -> None:
    root = clean(tmp_path / "ds")
    proc = run_cli(
        "data", "check", *FAST, "data=yolo_txt", f"data.root={root}", "hydra.run.dir=run", cwd=tmp_path
    )
    assert "data check: data=yolo_txt (detection)" in proc.stdout and "no problem" in proc.stdout
    assert "│ train │      3 │          0 │       2 │           2 │" in proc.stdout


def test_the_cli_exits_1_naming_every_bad_file(tmp_path: Path) -> None:
    root = broken_yolo(tmp_path / "ds")
    args = ("data", "check", *FAST, "data=yolo_txt", f"data.root={root}", "hydra.run.dir=run")
    proc = run_cli(*args, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output
    assert (
        str(root / "labels" / "train" / "a.txt") in output
        and str(root / "images" / "val" / "broken.jpg") in output
    )


def test_a_phone_photo_annotated_as_displayed_passes_and_one_annotated_unrotated_is_listed(
    tmp_path: Path,
) -> None:
    good = phone_voc(tmp_path / "good", PHONE_SHOWN, ("dog", 5, 35, 28, 46, 0))
    report = check(tmp_path, "data=voc", f"data.root={good}", "data.years=[2007]", "data.classes=[dog]")
    assert report["status"] == "ok" and report["problems"] == []
    assert report["splits"]["train"]["objects"] == 1
    stored = phone_voc(tmp_path / "stored", PHONE_STORED, ("dog", 5, 5, 28, 30, 0))
    with pytest.raises(DataError, match="2 problem"):
        check(tmp_path, "data=voc", f"data.root={stored}", "data.years=[2007]", "data.classes=[dog]")
    rows = json.loads((tmp_path / "run" / "data_check.json").read_text())["problems"]
    assert [(r["where"], r["fit"]) for r in rows] == [
        ("train split", "stops the run"),
        ("val split", "stops the run"),
    ]
    assert rows[0]["file"] == str(stored / "VOC2007" / "JPEGImages" / "phone.jpg")
    assert rows[0]["what"].startswith(
        "the image is 48x32 (height x width, as displayed after its EXIF orientation 6) but its annotation says 32x48"
    )


def test_a_coco_phone_photo_is_checked_against_its_images_entry(tmp_path: Path) -> None:
    for name, size, bbox in (("good", (32, 48), [4, 34, 24, 12]), ("stored", (48, 32), [4, 4, 24, 12])):
        ann, images = phone_coco(tmp_path / name, size, bbox)
        paths = (
            f"data.train_ann={ann}",
            f"data.val_ann={ann}",
            f"data.train_images={images}",
            f"data.val_images={images}",
        )
        if name == "good":
            report = check(tmp_path, "data=coco", *paths)
            assert (
                report["status"] == "ok"
                and report["problems"] == []
                and report["splits"]["val"]["objects"] == 1
            )
            continue
        with pytest.raises(DataError, match="2 problem") as info:
            check(tmp_path, "data=coco", *paths, "data.on_bad_image=skip")
        rows = info.value.report["problems"]
        assert {(Path(r["file"]).name, r["fit"]) for r in rows} == {("phone.jpg", "skipped")}
        assert "annotation says 32x48, the size of the stored, unrotated pixels" in rows[0]["what"]


def test_a_16bit_png_is_read_and_pixels_without_an_8bit_scale_are_listed(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "tree", per_class=2)
    Image.fromarray(SAMPLES_16).save(root / "train" / "n01" / "deep.png")  # mode I;16
    Image.fromarray(SAMPLES_16.astype(np.float32)).save(root / "train" / "n02" / "float.tif")
    with pytest.raises(DataError, match="1 problem") as info:
        check(
            tmp_path, "data=imagefolder", f"data.root={root}", "data.on_bad_image=skip", "data.num_workers=1"
        )
    report = info.value.report
    assert report["splits"]["train"]["images"] == 8 and report["splits"]["train"]["unreadable"] == 1
    [row] = report["problems"]
    assert row["file"] == str(root / "train" / "n02" / "float.tif") and row["fit"] == "skipped"
    assert row["what"] == "floating-point pixels (mode F) have no 8-bit scale: save it as 8 or 16 bits"


def test_coco_masks_are_checked_for_a_mask_model(tmp_path: Path) -> None:
    """data=coco with model=mask_rcnn reads every mask as fit would: a garbage compressed RLE is listed (boxes only,
    the masks are not read)."""
    garbage = {"segmentation": {"size": [30, 40], "counts": "garbage!!"}}
    ann_file, image_dir = write_coco(tmp_path, lambda data: data["annotations"][1].update(garbage))
    files = [f"data.{split}_{kind}={path}" for split in ("train", "val")
             for kind, path in (("ann", ann_file), ("images", image_dir))]  # fmt: skip
    assert check(tmp_path, "data=coco", *files)["problems"] == []
    with pytest.raises(DataError, match="1 problem") as info:
        check(tmp_path, "data=coco", "model=mask_rcnn", *files)
    report = info.value.report
    assert report["task"] == "instance_segmentation" and report["splits"]["train"]["objects"] == 1
    assert [(r["file"], r["where"], r["what"], r["fit"]) for r in report["problems"]] == [
        (
            str(ann_file),
            "annotation id 9 (image id 2)",
            "segmentation RLE counts 'garbage!!' is not a compressed RLE (RLE string is malformed: early end.)",
            "stops the run",
        )
    ]


def test_an_empty_class_folder_is_listed_stopping_fit_unless_allowed(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "tree", per_class=2)
    (root / "train" / "n04").mkdir()
    (root / "train" / "n04" / "notes.txt").write_text("to label")
    with pytest.raises(DataError, match="1 problem") as info:
        check(tmp_path, "data=imagefolder", f"data.root={root}")
    row = {
        "file": str(root / "train" / "n04"),
        "where": "train split",
        "what": "class folder 'n04' holds no image file (.jpg, .jpeg, .png, ... in any case): only 1 other "
        "file(s), e.g. 'notes.txt'",
        "fix": "add its images or remove the folder, or set data.allow_empty_classes=true to keep it as a class "
        "without training images (e.g. so class indices match another split's)",
        "fit": "stops the run",
    }
    report = info.value.report
    assert report["problems"] == [row] and report["classes"] == ["n01", "n02", "n03", "n04"]
    assert report["splits"]["train"]["per_class"]["n04"] == {"images": 0}

    allowed = check(tmp_path, "data=imagefolder", f"data.root={root}", "data.allow_empty_classes=true")
    assert allowed["status"] == "ok" and allowed["problems"] == [{**row, "fit": "kept"}]


def test_the_tables_print_file_names_class_names_and_boxes_as_they_are(tmp_path: Path) -> None:
    """Square brackets in what the user wrote are not rich markup: `photo[red] x.jpg` keeps `[red]`, a box
    `[nan, ...]` keeps its values, a class `hot[dog]` its name."""

    def bracketed(data: dict) -> None:
        data["images"][1]["file_name"] = "photo[red] x.jpg"
        data["annotations"][1]["bbox"] = [float("nan"), 5, 4, 4]
        data["categories"][1]["name"] = "hot[dog]"

    ann_file, image_dir = write_coco(tmp_path, bracketed)
    (image_dir / "photo[red] x.jpg").write_bytes(CORRUPT_JPEG)
    files = [f"data.{split}_{kind}={path}" for split in ("train", "val")
             for kind, path in (("ann", ann_file), ("images", image_dir))]  # fmt: skip
    proc = run_cli(
        "data", "check", *FAST, "data=coco", *files, "hydra.run.dir=run", cwd=tmp_path, check=False
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(f"│ {image_dir / 'photo[red] x.jpg'} │ val split " in line for line in lines)
    assert any(
        "│ box XYXY [nan, 5.0, nan, 9.0] has non-finite coordinates; fix or remove that annotation │" in line
        for line in lines
    )
    assert any(line.startswith("│ hot[dog] ") for line in lines)


def test_voc_difficult_objects_are_counted_and_said_to_be_left_out_of_training(tmp_path: Path) -> None:
    devkit = write_voc(
        tmp_path / "VOCdevkit",
        2007,
        {
            "000001": [("dog", 5, 5, 20, 20, 0), ("cat", 2, 2, 9, 9, 1)],
            "000002": [("cat", 5, 5, 20, 20, 1)],
            "000003": [("dog", 5, 5, 20, 20, 0)],
        },
        {"trainval": ["000001", "000002"], "test": ["000003"]},
    )
    report = check(tmp_path, "data=voc", f"data.root={devkit}", "data.years=[2007]")
    train = report["splits"]["train"]
    assert (train["objects"], train["difficult"], train["backgrounds"]) == (1, 2, 1)
    assert report["splits"]["val"]["difficult"] == 0
    proc = run_cli(
        "data", "check", *FAST, "data=voc", f"data.root={devkit}", "data.years=[2007]", "hydra.run.dir=run",
        cwd=tmp_path,
    )  # fmt: skip
    assert "│ train │      2 │          0 │       1 │         2 │           1 │" in proc.stdout
    assert (
        "not in objects: fit leaves them out of training (data.use_difficult=true keeps them)" in proc.stdout
    )
