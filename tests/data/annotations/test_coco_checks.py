"""The COCO checks through every loader that reads COCO json (`data=coco` for boxes, and with masks for
`model=mask_rcnn`; `data=coco_seg`): one tiny dataset per defect, written as a real json under tmp_path, and the
exact outcome under each `data.on_bad_annotation`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.coco.segmentation import COCOSegmentation
from cvtrain.errors import DataError

W, H = 40, 30
LOADERS = ("coco", "coco_masks", "coco_seg")


def polygon(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def compressed_rle(mask: np.ndarray, size: list[int]) -> dict[str, Any]:
    """`mask` as pycocotools encodes it, labelled with `size` (a wrong one makes the runs disagree with it)."""
    return {"size": size, "counts": mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")}


def annotation(ann_id: int, image_id: int, bbox: list[Any], **extra: Any) -> dict[str, Any]:
    x, y, w, h = (v if isinstance(v, int | float) else 1 for v in bbox)
    fields = {"category_id": 18, "iscrowd": 0, "area": 1.0, "segmentation": polygon(x, y, abs(w), abs(h))}
    return {"id": ann_id, "image_id": image_id, "bbox": bbox, **fields, **extra}


def tiny() -> dict[str, Any]:
    """Image 1 holds one good dog; image 2 holds annotation 9, which each case breaks in one way."""
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
        ],
        "annotations": [annotation(1, 1, [2, 3, 10, 12]), annotation(9, 2, [5, 5, 8, 8])],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }


@dataclass(frozen=True)
class Always:
    """An error whatever the policy: the message holds the file and `pattern`."""

    pattern: str


@dataclass(frozen=True)
class Policy:
    """An error under `error`; under `skip` annotation 9 is left out and listed as `action`, as (where, what)."""

    where: str
    what: str
    action: str = "skipped"


OK = None  # the loader does not read what is broken: annotation 9 is used, nothing is listed


def boxes_only(outcome: Policy) -> dict[str, Policy | None]:
    """A defect of the box: `data=coco` (with or without masks) reads it, `data=coco_seg` does not."""
    return {"coco": outcome, "coco_masks": outcome, "coco_seg": OK}


def masks_only(outcome: Policy) -> dict[str, Policy | None]:
    """A defect of the segmentation: read by the mask readers only."""
    return {"coco": OK, "coco_masks": outcome, "coco_seg": outcome}


Mutate = Callable[[dict[str, Any]], Any]


def change(ann: dict[str, Any]) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        data["annotations"][1].update(ann)

    return mutate


def set_image(**fields: Any) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        data["images"][1].update(fields)

    return mutate


def no_annotations_key(data: dict[str, Any]) -> None:
    del data["annotations"]


def empty_annotations(data: dict[str, Any]) -> None:
    data["annotations"] = []


def duplicate_annotation_id(data: dict[str, Any]) -> None:
    data["annotations"][1]["id"] = 1


WHERE = "annotation id 9 (image id 2)"
RLE_OF_ANOTHER_SIZE = {"size": [H + 1, W], "counts": [(H + 1) * W]}
CASES: dict[str, tuple[Mutate | str, dict[str, Always | Policy | None]]] = {
    "json that does not parse": ('{"images": [', dict.fromkeys(LOADERS, Always(r"is not valid JSON \(line 1"))),
    "empty annotations list": (
        empty_annotations,
        {
            "coco": Always(r"the training split: no usable object: 2 image\(s\), 0 annotation\(s\)"),
            "coco_masks": Always(r"the training split: no usable object: 2 image\(s\), 0 annotation\(s\)"),
            "coco_seg": Always(r"the split: no usable object of the 2 kept classes: 2 image\(s\), 0 annotation"),
        },
    ),
    "no annotations key": (
        no_annotations_key,
        {
            "coco": Always(r"the training split: no usable object: 2 image\(s\), no 'annotations' key"),
            "coco_masks": Always(r"the training split: no usable object: 2 image\(s\), no 'annotations' key"),
            "coco_seg": Always(r"the split: no usable object of the 2 kept classes: 2 image\(s\), no 'annot"),
        },
    ),
    "category id not in categories": (
        change({"category_id": 77}),
        dict.fromkeys(LOADERS, Policy(WHERE, "category_id 77 is not in 'categories'")),
    ),
    "image id that does not exist": (
        change({"image_id": 5}),
        dict.fromkeys(LOADERS, Policy("annotation id 9 (image id 5)", "image_id 5 is not in 'images'")),
    ),
    "duplicate image ids": (set_image(id=1), dict.fromkeys(LOADERS, Always(r"images\[1\]: id 1 appears twice"))),
    "duplicate annotation ids": (
        duplicate_annotation_id,
        dict.fromkeys(LOADERS, Always(r"annotations\[1\]: id 1 appears twice in 'annotations'")),
    ),
    "file_name leaving the image folder": (
        set_image(file_name="../../etc/passwd"),
        dict.fromkeys(LOADERS, Always(r"image id 2: file_name '../../etc/passwd' is not a path inside the image")),
    ),
    "absolute file_name": (
        set_image(file_name="/etc/passwd"),
        dict.fromkeys(LOADERS, Always(r"image id 2: file_name '/etc/passwd' is not a path inside the image")),
    ),
    "polygon of two points": (
        change({"segmentation": [[5, 5, 13, 13]]}),
        masks_only(Policy(WHERE, "segmentation polygon 0 has 4 numbers (needs 3+ x,y points)")),
    ),
    "RLE of another size": (
        change({"segmentation": RLE_OF_ANOTHER_SIZE}),
        masks_only(Policy(WHERE, f"segmentation RLE size [{H + 1}, {W}] is not the image's")),
    ),
    "garbage compressed RLE counts": (
        change({"segmentation": {"size": [H, W], "counts": "garbage!!"}}),
        masks_only(Policy(WHERE, "segmentation RLE counts 'garbage!!' is not a compressed RLE (RLE string is malformed")),
    ),
    "compressed RLE of too few pixels": (
        change({"segmentation": compressed_rle(np.ones((10, 10), np.uint8), size=[H, W])}),
        masks_only(Policy(WHERE, f"segmentation RLE runs cover 100 pixels, not the {W}x{H} image's {W * H}")),
    ),
    "uncompressed RLE of too many pixels": (
        change({"segmentation": {"size": [H, W], "counts": [0, W * H + 5]}}),
        masks_only(Policy(WHERE, f"segmentation RLE runs cover {W * H + 5} pixels, not the {W}x{H} image's")),
    ),
    "polygon point far outside the image": (
        change({"segmentation": [[5, 5, 1e9, 5, 5, 9]]}),
        masks_only(Policy(WHERE, f"segmentation polygon 0 has the point (1e+09, 5), beyond the {W}x{H} image")),
    ),
    "negative-width box": (
        change({"bbox": [5, 5, -3, 4]}),
        boxes_only(Policy(WHERE, "empty box XYXY [5.0, 5.0, 2.0, 9.0]")),
    ),
    "bbox that is not numbers": (
        change({"bbox": ["a", 5, 4, 4]}),
        boxes_only(Policy(WHERE, "bbox ['a', 5, 4, 4] is not numbers")),
    ),
    "bbox of three numbers": (
        change({"bbox": [5, 5, 4]}),
        boxes_only(Policy(WHERE, "bbox [5, 5, 4] is not [x, y, w, h]")),
    ),
    "box wholly outside the image": (
        change({"bbox": [50, 5, 4, 4]}),
        boxes_only(Policy(WHERE, "box XYXY [50.0, 5.0, 54.0, 9.0] lies outside the 40x30 image")),
    ),
    "box partly outside the image": (
        change({"bbox": [35, 5, 10, 4]}),
        boxes_only(Policy(WHERE, "box XYXY [35.0, 5.0, 45.0, 9.0] sticks out of the 40x30", "clipped")),
    ),
}  # fmt: skip


def write(tmp_path: Path, mutate: Mutate | str) -> tuple[Path, Path]:
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(np.full((H, W, 3), 90, dtype=np.uint8)).save(image_dir / name)
    ann_file = tmp_path / "instances.json"
    if isinstance(mutate, str):
        ann_file.write_text(mutate)
    else:
        data = tiny()
        mutate(data)
        ann_file.write_text(json.dumps(data))
    return ann_file, image_dir


def load(loader: str, ann_file: Path, image_dir: Path, policy: str) -> COCODetection | COCOSegmentation:
    checks = AnnotationLog(policy)
    if loader in ("coco", "coco_masks"):
        return COCODetection(
            ann_file=ann_file,
            image_dir=image_dir,
            keep_empty=False,
            train=True,
            checks=checks,
            masks=loader == "coco_masks",
        )
    return COCOSegmentation(
        ann_file=ann_file, image_dir=image_dir, classes="all", cache_dir=None, drop_empty=True, checks=checks
    )


def used_images(dataset: COCODetection | COCOSegmentation) -> list[int]:
    return list(dataset.image_ids)


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", CASES)
def test_each_defect_has_one_outcome_in_every_loader(
    tmp_path: Path, case: str, loader: str, policy: str
) -> None:
    mutate, outcomes = CASES[case]
    expected = outcomes[loader]
    ann_file, image_dir = write(tmp_path, mutate)
    if isinstance(expected, Always) or (
        isinstance(expected, Policy) and expected.action != "clipped" and policy == "error"
    ):
        pattern = (
            expected.pattern
            if isinstance(expected, Always)
            else re.escape(f"{expected.where}: {expected.what}")
        )
        with pytest.raises(DataError, match=re.escape(str(ann_file)) + ".*" + pattern):
            load(loader, ann_file, image_dir, policy)
        return
    dataset = load(loader, ann_file, image_dir, policy)
    problems = [(p.file, p.where, p.action) for p in dataset.checks.problems]
    if expected is None:
        assert problems == [] and used_images(dataset) == [1, 2]
    elif expected.action == "clipped":
        assert problems == [(str(ann_file), expected.where, "clipped")] and used_images(dataset) == [1, 2]
        assert dataset.checks.problems[0].what.startswith(expected.what)
    else:
        assert problems == [(str(ann_file), expected.where, "skipped")]
        assert dataset.checks.problems[0].what.startswith(expected.what)
        assert used_images(dataset) == [1] and sorted(dataset.coco.anns) == [1]  # nor scored, nor painted
