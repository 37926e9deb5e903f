"""Instance masks from COCO annotations (polygons; crowd RLE left out as for boxes), one per box, moved by the
transforms with their boxes; a missing segmentation and an image of another size are clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.errors import DataError
from tests.conftest import fixture_dir

FLIP = detection_transforms(
    type("Aug", (), {"hflip": 1.0, "scale_range": None, "photometric": False, "mean": [0.5] * 3})(),
    train=True,
)


def sample_dataset(**options) -> COCODetection:
    folder = fixture_dir("coco-sample")
    return COCODetection(
        ann_file=options.pop("ann_file", folder / "annotations.json"), image_dir=folder / "images",
        keep_empty=False, train=True, masks=True, **options,
    )  # fmt: skip


def test_every_box_has_its_objects_mask_and_crowds_have_none() -> None:
    dataset = sample_dataset()
    crowd_images = {a["image_id"] for a in dataset.coco.anns.values() if a["iscrowd"]}
    assert crowd_images and all(isinstance(a["segmentation"], list) for a in dataset.coco.anns.values()
                                if not a["iscrowd"])  # fmt: skip
    for index in range(len(dataset)):
        image, target, meta = dataset[index]
        masks, boxes = target["masks"], target["boxes"]
        assert masks.dtype == torch.uint8 and masks.shape == (len(boxes), *image.shape[-2:])
        for ann_id, mask, box in zip(dataset.annotation_ids[meta["image_id"]], masks, boxes, strict=True):
            ann = dataset.coco.anns[ann_id]
            assert not ann["iscrowd"] and int(mask.sum()) > 0
            # the rasterised polygon lies in its box (pixel rounding aside)
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert (
                xs.min() >= box[0] - 1
                and xs.max() <= box[2]
                and ys.min() >= box[1] - 1
                and ys.max() <= box[3]
            )
            assert abs(int(mask.sum()) - ann["area"]) <= 0.1 * ann["area"] + 50


def test_masks_move_with_the_image_and_their_boxes() -> None:
    plain, flipped = sample_dataset(), sample_dataset(transforms=FLIP)
    _, target, _ = plain[0]
    _, moved, _ = flipped[0]
    assert torch.equal(moved["masks"], target["masks"].flip(-1)) and len(moved["masks"]) == len(
        moved["boxes"]
    )


def test_a_missing_segmentation_or_a_wrong_image_size_is_named(tmp_path: Path) -> None:
    folder = fixture_dir("coco-sample")
    data = json.loads((folder / "annotations.json").read_text())
    target_ann = next(a for a in data["annotations"] if not a["iscrowd"])
    del target_ann["segmentation"]
    (tmp_path / "a.json").write_text(json.dumps(data))
    # The shared annotation checks read the masks when the model needs them: an error at load time.
    with pytest.raises(DataError, match=f"annotation id {target_ann['id']} .*neither polygons nor RLE"):
        sample_dataset(ann_file=tmp_path / "a.json")

    data = json.loads((folder / "annotations.json").read_text())
    image = data["images"][0]
    image["height"] += 4  # the json disagrees with the picture
    h, w = image["height"], image["width"]
    for ann in data["annotations"]:  # crowd RLEs must match the (wrong) size pycocotools decodes at
        if ann["image_id"] == image["id"] and ann["iscrowd"]:
            ann["segmentation"] = mask_utils.encode(np.asfortranarray(np.zeros((h, w), np.uint8)))
            ann["segmentation"]["counts"] = ann["segmentation"]["counts"].decode()
    (tmp_path / "b.json").write_text(json.dumps(data))
    dataset = sample_dataset(ann_file=tmp_path / "b.json")
    bad = dataset[dataset.image_ids.index(image["id"])]
    assert isinstance(bad, BadSample) and f"annotation says {h}x{w}" in bad.reason


def with_garbage_rle(tmp_path: Path, crowd: bool) -> tuple[Path, dict]:
    """The real sample with one annotation's mask (its crowd region's, or an object's) a garbage compressed RLE
    of the right size: pycocotools' decoder would read past its buffers on it."""
    data = json.loads((fixture_dir("coco-sample") / "annotations.json").read_text())
    ann = next(a for a in data["annotations"] if a["iscrowd"] == crowd)
    image = next(i for i in data["images"] if i["id"] == ann["image_id"])
    ann["segmentation"] = {"size": [image["height"], image["width"]], "counts": "garbage!!"}
    (tmp_path / "instances.json").write_text(json.dumps(data))
    return tmp_path / "instances.json", ann


@pytest.mark.parametrize("crowd", [True, False], ids=["crowd region", "object"])
def test_a_garbage_rle_is_an_error_naming_it_or_a_counted_skip(tmp_path: Path, crowd: bool) -> None:
    ann_file, ann = with_garbage_rle(tmp_path, crowd)
    what = (
        f"{ann_file}: annotation id {ann['id']} (image id {ann['image_id']}): segmentation RLE counts "
        "'garbage!!' is not a compressed RLE (RLE string is malformed: early end.); fix or remove that annotation"
    )
    with pytest.raises(DataError) as info:
        sample_dataset(ann_file=ann_file)
    assert str(info.value).startswith(what + "\n(or run with data.on_bad_annotation=skip")

    dataset = sample_dataset(ann_file=ann_file, checks=AnnotationLog("skip"))
    assert [p.message() for p in dataset.checks.problems] == [what]
    assert ann["id"] not in dataset.coco.anns  # neither trained on nor scored
    for index in range(len(dataset)):  # every sample decodes its masks (a data worker's work)
        image, target, _ = dataset[index]
        assert target["masks"].shape == (len(target["boxes"]), *image.shape[-2:])
