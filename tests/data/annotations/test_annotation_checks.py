"""The shared annotation validation: the policy of `AnnotationLog`, the listing, the box and path checks."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from cvtrain.data.annotations.checks import AnnotationLog, check_box, image_path, write_listing
from cvtrain.errors import DataError


def test_a_policy_defect_stops_under_error_and_is_counted_and_listed_under_skip(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"^f\.json: annotation id 3: bad box; fix it\n.*on_bad_annotation=skip"
    ):
        AnnotationLog("error").bad("f.json", "annotation id 3", "bad box", "fix it")
    checks = AnnotationLog("skip")
    checks.bad("f.json", "annotation id 3", "bad box", "fix it")
    checks.bad("f.json", "annotation id 3", "bad box", "fix it")  # the same file read by two splits
    checks.clipped("f.json", "annotation id 4", "sticks out")
    assert [(p.action, p.where) for p in checks.problems] == [
        ("skipped", "annotation id 3"),
        ("clipped", "annotation id 4"),
    ]
    assert checks.count("skipped") == 1 and checks.count() == 2 and checks.summary() == "1 clipped, 1 skipped"
    assert checks.summary(since=1) == "1 clipped"
    listing = write_listing(checks.problems, tmp_path)
    assert listing == tmp_path / "bad_annotations.txt"
    assert listing.read_text().splitlines() == [
        "# action\tfile\twhere\twhat\tfix",
        "skipped\tf.json\tannotation id 3\tbad box\tfix it",
        "clipped\tf.json\tannotation id 4\tsticks out\tnothing needed (it is clamped to the image); correct the box to silence this",
    ]  # fmt: skip
    assert write_listing([], tmp_path / "none") is None


def test_always_errors_ignore_the_policy_and_collect_mode_records_what_fit_would_stop_on() -> None:
    with pytest.raises(DataError, match=r"^f\.json: images\[1\]: id 1 appears twice; renumber$"):
        AnnotationLog("skip").error("f.json", "images[1]", "id 1 appears twice", "renumber")
    checks = AnnotationLog("error", collect=True)  # `cvtrain data check`
    checks.bad("f.json", "line 4", "class 9 out of range", "fix the line")
    assert [(p.action, p.where) for p in checks.problems] == [("error", "line 4")]
    with pytest.raises(DataError, match=r"on_bad_annotation='warn': choose one of error, skip"):
        AnnotationLog("warn")


def test_one_warning_per_file_lists_its_problems(caplog) -> None:
    checks = AnnotationLog("skip")
    checks.bad("old.json", "annotation id 1", "bad", "fix")
    since = len(checks.problems)
    for n in range(25):
        checks.bad("f.json", f"annotation id {n}", "empty box", "fix")
    with caplog.at_level(logging.WARNING):
        checks.report("f.json", since)
        checks.report("g.json", len(checks.problems))  # nothing new: silent
    [record] = caplog.records
    assert "f.json: annotation problems: 25 skipped (all listed in bad_annotations.txt" in record.message
    assert "annotation id 19" in record.message and "annotation id 20:" not in record.message
    assert "... and 5 more" in record.message and "old.json" not in record.message


BOX_CASES = {
    "inside": ((1, 2, 10, 20), (1.0, 2.0, 10.0, 20.0), None),
    "partly outside": ((-2, 2, 10, 35), (-2.0, 2.0, 10.0, 35.0), ("clipped", "box XYXY [-2.0, 2.0, 10.0, 35.0] sticks out of the 40x30 image")),
    "zero width": ((5, 2, 5, 20), None, ("skipped", "empty box XYXY [5.0, 2.0, 5.0, 20.0] (zero or negative width or height)")),
    "inverted": ((9, 2, 5, 20), None, ("skipped", "empty box XYXY [9.0, 2.0, 5.0, 20.0] (zero or negative width or height)")),
    "outside": ((41, 2, 50, 20), None, ("skipped", "box XYXY [41.0, 2.0, 50.0, 20.0] lies outside the 40x30 image")),
    "not finite": ((0, 0, math.inf, 5), None, ("skipped", "box XYXY [0.0, 0.0, inf, 5.0] has non-finite coordinates")),
    "not numbers": ((0, "x", 3, 5), None, ("skipped", "box [0, 'x', 3, 5] is not four numbers")),
}  # fmt: skip


@pytest.mark.parametrize("case", BOX_CASES)
def test_boxes_are_kept_clipped_or_skipped(case: str) -> None:
    box, kept, problem = BOX_CASES[case]
    checks = AnnotationLog("skip")
    assert check_box(checks, box, width=40, height=30, file="f", where="object 0", fix="fix") == kept
    assert [(p.action, p.what) for p in checks.problems] == ([problem] if problem else [])


@pytest.mark.parametrize("name", ["a.jpg", "sub/a.jpg", "./sub/../a.jpg"])
def test_file_names_inside_the_image_folder_are_accepted(tmp_path: Path, name: str) -> None:
    assert image_path(AnnotationLog(), tmp_path, name, file="f.json", where="image id 1") == tmp_path / name


@pytest.mark.parametrize("name", ["../a.jpg", "sub/../../a.jpg", "/etc/passwd", ""])
def test_file_names_leaving_the_image_folder_are_refused_whatever_the_policy(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(
        DataError, match=rf"^f\.json: image id 7: file_name '{name}' is not a path inside the image"
    ):
        image_path(AnnotationLog("skip"), tmp_path, name, file="f.json", where="image id 7")
