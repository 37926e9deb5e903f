"""aug=yolo: the letterbox keeps boxes on their pixels, eval boxes map back to the original image, bad options fail."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors

from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.data.transforms.yolo import PAD_VALUE, LetterBox, yolo_transforms
from cvtrain.errors import ConfigError
from cvtrain.tasks.detection import to_original_pixels


def yolo_aug(**overrides: object) -> object:
    fields = {
        "letterbox": True,
        "image_size": 64,
        "hflip": 0.0,
        "vflip": 0.0,
        "hsv": None,
        "scale_range": None,
        "translate": 0.0,
        "mean": [0.485, 0.456, 0.406],
    }
    return OmegaConf.create({**fields, **overrides})


def scene(height: int, width: int, box: tuple[int, int, int, int]) -> tuple[tv_tensors.Image, dict]:
    """A black image with one white rectangle exactly at `box` (XYXY pixels)."""
    pixels = torch.zeros(3, height, width, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    pixels[:, y0:y1, x0:x1] = 255
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([box], dtype=torch.float32), format="XYXY", canvas_size=(height, width)
    )
    return tv_tensors.Image(pixels), {"boxes": boxes, "labels": torch.tensor([3])}


def test_training_letterbox_pads_a_centred_square_and_the_box_stays_on_its_pixels() -> None:
    image, target = scene(32, 64, (8, 4, 24, 20))  # wide: scale 1, pad 16 rows above and below
    out, out_target = yolo_transforms(yolo_aug(), train=True)(image, target)
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    assert torch.equal(out[:, :16], torch.full_like(out[:, :16], PAD_VALUE))
    (x0, y0, x1, y1) = out_target["boxes"][0].tolist()
    assert (x0, y0, x1, y1) == (8, 20, 24, 36)
    assert out[:, 20:36, 8:24].min() == 255 and out[:, 19, 8:24].max() < 255
    assert out_target["labels"].tolist() == [3]


def test_letterbox_halves_a_large_image_keeping_its_aspect() -> None:
    image, target = scene(64, 128, (40, 20, 80, 60))
    out, out_target = LetterBox(size=64, pad=True)(image, target)
    assert out.shape == (3, 64, 64)
    assert out_target["boxes"][0].tolist() == [20.0, 26.0, 40.0, 46.0]  # halved, then 16 rows of padding


def test_eval_letterbox_resizes_without_padding_and_boxes_map_back_to_original_pixels() -> None:
    image, target = scene(96, 48, (6, 30, 30, 90))  # tall: longer side 96 -> 64
    out, out_target = detection_transforms(yolo_aug(), train=False)(image, target)
    assert out.shape == (3, 64, 32)  # the model pads to a multiple of 32 itself
    back = to_original_pixels(out_target["boxes"].as_subclass(torch.Tensor), (64, 32), (96, 48))
    assert torch.allclose(back, torch.tensor([[6.0, 30.0, 30.0, 90.0]]))


def test_augmentations_keep_boxes_inside_and_labels_aligned() -> None:
    aug = yolo_aug(hflip=0.5, vflip=0.5, hsv=[0.015, 0.7, 0.4], scale_range=[0.5, 1.5], translate=0.2)
    pipeline = yolo_transforms(aug, train=True)
    torch.manual_seed(0)
    for _ in range(20):
        image, target = scene(48, 64, (10, 10, 30, 40))
        out, out_target = pipeline(image, target)
        boxes = out_target["boxes"]
        assert out.shape == (3, 64, 64)
        assert len(boxes) == len(out_target["labels"])
        assert (boxes >= 0).all() and (boxes <= 64).all()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"image_size": 100}, "aug.image_size"),
        ({"hsv": [0.9, 0.1, 0.1]}, "aug.hsv"),
        ({"translate": 1.5}, "aug.translate"),
    ],
)
def test_bad_options_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        yolo_transforms(yolo_aug(**overrides), train=True)
