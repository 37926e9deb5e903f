"""Mosaic: every box stays inside the canvas and on its own object's pixels; close_mosaic switches it off."""

from __future__ import annotations

import logging

import torch
from torchvision import tv_tensors

from cvtrain.contracts.batch import BadSample
from cvtrain.data.transforms.mosaic import MosaicDataset, mosaic

SIZE = 64


def coloured_sample(index: int, height: int, width: int) -> tuple:
    """A grey image with two objects, each filled with a colour unique to (image, object)."""
    pixels = torch.full((3, height, width), 114, dtype=torch.uint8)
    boxes, labels = [], []
    for k, (fx0, fy0, fx1, fy1) in enumerate([(0.05, 0.1, 0.45, 0.5), (0.55, 0.5, 0.95, 0.9)]):
        box = [round(fx0 * width), round(fy0 * height), round(fx1 * width), round(fy1 * height)]
        pixels[:, box[1] : box[3], box[0] : box[2]] = torch.tensor(colour(index, k), dtype=torch.uint8)[
            :, None, None
        ]
        boxes.append(box)
        labels.append(2 * index + k)
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(boxes, dtype=torch.float32), format="XYXY", canvas_size=(height, width)
        ),
        "labels": torch.tensor(labels),
    }
    return tv_tensors.Image(pixels), target, {"image_id": str(index), "orig_size": (height, width)}


def colour(index: int, k: int) -> tuple[int, int, int]:
    return (40 + 50 * index, 250 - 200 * k, 10 + 60 * k)


SIZES = [(64, 64), (32, 64), (64, 48), (128, 128)]


def check_boxes_on_their_pixels(image: torch.Tensor, target: dict) -> None:
    boxes, labels = target["boxes"].as_subclass(torch.Tensor), target["labels"]
    assert len(boxes) == len(labels) > 0
    assert (boxes >= 0).all() and (boxes <= 2 * SIZE).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= 1).all() and ((boxes[:, 3] - boxes[:, 1]) >= 1).all()
    for box, label in zip(boxes.round().int().tolist(), labels.tolist(), strict=True):
        x0, y0, x1, y1 = box
        inner = image[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1].int()  # one pixel in: resize blurs the edge
        if inner.numel() == 0:
            continue
        expected = torch.tensor(colour(label // 2, label % 2))[:, None, None]
        assert (inner - expected).abs().max() <= 2, (box, label)


def test_centred_mosaic_keeps_all_eight_objects_on_their_colours() -> None:
    samples = [coloured_sample(i, h, w) for i, (h, w) in enumerate(SIZES)]
    image, target, meta = mosaic(samples, size=SIZE, centre=(SIZE, SIZE))
    assert image.shape == (3, 2 * SIZE, 2 * SIZE) and meta["image_id"] == "0"
    assert sorted(target["labels"].tolist()) == list(range(8))
    check_boxes_on_their_pixels(image, target)


def test_off_centre_mosaic_clips_boxes_and_drops_the_ones_cut_away() -> None:
    samples = [coloured_sample(i, h, w) for i, (h, w) in enumerate(SIZES)]
    image, target, _ = mosaic(samples, size=SIZE, centre=(SIZE // 2 + 2, 3 * SIZE // 2))
    labels = target["labels"].tolist()
    assert len(labels) < 8  # part of the left images falls off the canvas
    check_boxes_on_their_pixels(image, target)
    for seed in range(10):
        torch.manual_seed(seed)
        centre = (
            int(torch.randint(SIZE // 2, 3 * SIZE // 2, ())),
            int(torch.randint(SIZE // 2, 3 * SIZE // 2, ())),
        )
        check_boxes_on_their_pixels(*mosaic(samples, size=SIZE, centre=centre)[:2])


class FourImages(torch.utils.data.Dataset):
    transforms = None

    def __init__(self, bad: int | None = None) -> None:
        self.bad = bad
        self.class_names = ["a", "b"]

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        if index == self.bad:
            return BadSample(path="broken.jpg", reason="truncated")
        return coloured_sample(index, *SIZES[index])


def identity(image, target):
    return image, target


def test_wrapper_mosaics_until_the_last_close_mosaic_epochs() -> None:
    data = MosaicDataset(dataset=FourImages(), transforms=identity, size=SIZE, p=1.0, close_mosaic=2)
    assert data.class_names == ["a", "b"] and len(data) == 4
    data.set_epoch(2, 5)
    image, target, _ = data[1]
    assert image.shape == (3, 2 * SIZE, 2 * SIZE)
    check_boxes_on_their_pixels(image, target)
    data.set_epoch(3, 5)
    image, target, _ = data[1]
    assert image.shape == (3, *SIZES[1]) and target["labels"].tolist() == [2, 3]


def test_a_run_too_short_for_any_mosaic_says_so_once(caplog) -> None:
    data = MosaicDataset(dataset=FourImages(), transforms=identity, size=SIZE, p=1.0, close_mosaic=10)
    with caplog.at_level(logging.WARNING, logger="cvtrain.data.transforms.mosaic"):
        for epoch in range(5):
            data.set_epoch(epoch, 5)
    assert not data.mosaic_on
    assert [r.getMessage() for r in caplog.records] == [
        "aug.close_mosaic=10 is not below trainer.epochs=5: no image is mosaicked in this run. Set "
        "aug.close_mosaic below trainer.epochs to train with mosaic, or aug.mosaic=0 to say so."
    ]
    caplog.clear()
    for p, epochs in ((1.0, 11), (0.0, 5)):  # mosaic in epoch 0; mosaic not asked for
        with caplog.at_level(logging.WARNING, logger="cvtrain.data.transforms.mosaic"):
            MosaicDataset(
                dataset=FourImages(), transforms=identity, size=SIZE, p=p, close_mosaic=10
            ).set_epoch(0, epochs)
    assert not caplog.records


def test_a_bad_image_is_returned_as_is_and_never_enters_a_mosaic() -> None:
    data = MosaicDataset(dataset=FourImages(bad=2), transforms=identity, size=SIZE, p=1.0)
    assert isinstance(data[2], BadSample)
    for _ in range(10):
        _, target, _ = data[0]
        assert not {4, 5} & set(target["labels"].tolist())


def test_closing_mosaic_reaches_persistent_dataloader_workers() -> None:
    data = MosaicDataset(dataset=FourImages(), transforms=identity, size=SIZE, p=1.0, close_mosaic=1)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, num_workers=1, persistent_workers=True, collate_fn=lambda sample: sample
    )
    data.set_epoch(0, 2)
    assert all(image.shape[-1] == 2 * SIZE for image, _, _ in loader)
    data.set_epoch(1, 2)  # the worker started in epoch 0 keeps running and must see the change
    assert [tuple(image.shape[-2:]) for image, _, _ in loader] == SIZES
