"""aug=yolo's one-pass training transform against the chain of torchvision transforms it replaces: the same draws,
boxes on the same objects (within a pixel), nearly the same pixels; the boxes enclose their objects."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors

from cvtrain.data.transforms.mosaic import mosaic
from cvtrain.data.transforms.yolo import PAD_VALUE, yolo_reference_transforms, yolo_transforms
from cvtrain.data.transforms.yolo_train import YoloTrainTransform, span

SIZE = 64
PER_IMAGE = 6  # objects at most per image; labels are unique across a mosaic's four images
# Channel values 60 apart, no greys: one colour per label of a mosaic.
COLOURS = [(r, g, b) for r in (50, 110, 170, 230) for g in (50, 110, 170, 230) for b in (50, 110, 230)]
COLOURS = [c for c in COLOURS if len(set(c)) > 1][: 4 * PER_IMAGE]


def yolo_aug(**overrides: object) -> object:
    fields = {
        "letterbox": True,
        "image_size": SIZE,
        "hflip": 0.5,
        "vflip": 0.5,
        "hsv": [0.015, 0.7, 0.4],
        "scale_range": [0.5, 1.5],
        "translate": 0.1,
        "mean": [0.485, 0.456, 0.406],
    }
    return OmegaConf.create({**fields, **overrides})


def objects(height: int, width: int, seed: int, first: int = 0) -> tuple[tv_tensors.Image, dict]:
    """A dark noisy image with up to six solid rectangles, each in its own colour (label = colour index, from
    `first`)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 30, (3, height, width), dtype=torch.uint8, generator=generator)
    boxes, labels = [], []
    for label in range(first, first + PER_IMAGE):
        rgb = COLOURS[label]
        w = int(torch.randint(4, max(5, width // 2), (), generator=generator))
        h = int(torch.randint(4, max(5, height // 2), (), generator=generator))
        x0 = int(torch.randint(0, width - w + 1, (), generator=generator))
        y0 = int(torch.randint(0, height - h + 1, (), generator=generator))
        if any(x0 < bx1 and bx0 < x0 + w and y0 < by1 and by0 < y0 + h for bx0, by0, bx1, by1 in boxes):
            continue  # no overlaps: every box's inside is its own colour
        pixels[:, y0 : y0 + h, x0 : x0 + w] = torch.tensor(rgb, dtype=torch.uint8)[:, None, None]
        boxes.append((x0, y0, x0 + w, y0 + h))
        labels.append(label)
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(boxes, dtype=torch.float32), format="XYXY", canvas_size=(height, width)
        ),
        "labels": torch.tensor(labels),
    }
    return tv_tensors.Image(pixels), target


def a_mosaic(seed: int) -> tuple[tv_tensors.Image, dict]:
    shapes = [(64, 64), (40, 64), (64, 48), (96, 80)]
    samples = [(*objects(h, w, seed * 4 + i, first=PER_IMAGE * i), {}) for i, (h, w) in enumerate(shapes)]
    centre = (SIZE // 2 + (seed * 7) % SIZE, SIZE // 2 + (seed * 13) % SIZE)
    image, target, _ = mosaic(samples, size=SIZE, centre=centre)
    return image, target


def both(aug: object, image: tv_tensors.Image, target: dict, seed: int) -> tuple:
    torch.manual_seed(seed)
    ours = yolo_transforms(aug, train=True)(image, target)
    after_ours = torch.get_rng_state()
    torch.manual_seed(seed)
    reference = yolo_reference_transforms(aug)(image, target)
    assert torch.equal(after_ours, torch.get_rng_state())  # the same generator calls
    return ours, reference


@pytest.mark.parametrize("source", ["mosaic", "wide", "tall", "small"])
def test_boxes_and_pixels_follow_the_reference_chain(source: str) -> None:
    aug = yolo_aug()
    assert isinstance(yolo_transforms(aug, train=True), YoloTrainTransform)
    for seed in range(15):
        if source == "mosaic":
            image, target = a_mosaic(seed)
        else:
            image, target = objects(
                *{"wide": (40, 96), "tall": (120, 50), "small": (24, 32)}[source], seed=seed
            )
        (out, out_target), (ref, ref_target) = both(aug, image, target, seed)
        assert out.shape == ref.shape == (3, SIZE, SIZE) and out.dtype == torch.uint8 and out.is_contiguous()
        ours = dict(zip(out_target["labels"].tolist(), out_target["boxes"].tolist(), strict=True))
        theirs = dict(zip(ref_target["labels"].tolist(), ref_target["boxes"].tolist(), strict=True))
        for label in ours.keys() & theirs.keys():
            assert torch.allclose(torch.tensor(ours[label]), torch.tensor(theirs[label]), atol=1.0), (
                seed,
                label,
            )
        # Boxes on an edge of one pixel may survive in one and not the other (rounding of the in-view crop).
        for label in ours.keys() ^ theirs.keys():
            box = torch.tensor(ours.get(label) or theirs.get(label))
            assert min(box[2] - box[0], box[3] - box[1]) < 2.5, (seed, label)
        # One interpolation (antialiased) instead of two: the pixels differ at edges, not on average.
        assert (out.float() - ref.float()).abs().mean() < 12, seed


def test_boxes_enclose_their_objects_after_every_augmentation() -> None:
    aug = yolo_aug(hsv=None)  # colours unchanged, so each object is found by its colour
    transform = yolo_transforms(aug, train=True)
    checked = 0
    for seed in range(30):
        torch.manual_seed(seed)
        image, target = a_mosaic(seed)
        out, out_target = transform(image, target)
        assert (out_target["boxes"] >= 0).all() and (out_target["boxes"] <= SIZE).all()
        for box, label in zip(out_target["boxes"].tolist(), out_target["labels"].tolist(), strict=True):
            x0, y0, x1, y1 = box
            expected = torch.tensor(COLOURS[label])[:, None, None]
            inner = out[:, round(y0) + 1 : round(y1) - 1, round(x0) + 1 : round(x1) - 1].int()
            if inner.numel():
                assert (inner - expected).abs().max() <= 40, (
                    seed,
                    box,
                    label,
                )  # resampled edges blur a little
                checked += 1
            # Nothing of the object's colour outside its box: pixels whose 3x3 neighbourhood is all of that colour
            # (a blend at an edge can pass for another colour, three pixels in a row cannot).
            near = ((out.int() - expected).abs().amax(dim=0) <= 8).float()
            core = -torch.nn.functional.max_pool2d(-near[None], 3, stride=1, padding=1)[0]
            ys, xs = core.nonzero(as_tuple=True)
            if len(xs):
                assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1, seed
    assert checked > 50


def test_the_affine_border_stays_grey_and_the_letterbox_padding_is_jittered() -> None:
    image, target = objects(32, 64, seed=1)  # letterboxed: 16 rows of padding above and below
    aug = yolo_aug(hsv=[0.0, 0.0, 0.4], scale_range=[0.5, 0.5], translate=0.0, hflip=0.0, vflip=0.0)
    for seed in range(5):
        (out, _), (ref, _) = both(aug, image, target, seed)
        assert (out[:, :16] == PAD_VALUE).all() and (out[:, :, :16] == PAD_VALUE).all()  # the affine's border
        assert out[0, 17, 20] == ref[0, 17, 20] != PAD_VALUE  # letterbox padding, brightness-jittered


def test_no_augmentation_is_the_plain_letterbox() -> None:
    aug = yolo_aug(hsv=None, scale_range=None, translate=0.0, hflip=0.0, vflip=0.0)
    image, target = objects(48, 64, seed=3)
    (out, out_target), (ref, ref_target) = both(aug, image, target, 0)
    assert torch.equal(out, ref) and torch.equal(out_target["boxes"], ref_target["boxes"])


def test_colours_are_told_apart() -> None:
    distinct = torch.cdist(torch.tensor(COLOURS).float(), torch.tensor(COLOURS).float(), p=float("inf"))
    assert len(COLOURS) == 4 * PER_IMAGE and (distinct + 100 * torch.eye(len(COLOURS)) >= 60).all()


def test_span_rounds_to_whole_pixels_and_keeps_the_scale() -> None:
    whole = span(100, 0.5, 10.2, 64)  # 0..100 -> 10.2..60.2
    assert (whole.src0, whole.src1, whole.dst0, whole.dst1, whole.out0, whole.out1) == (
        0,
        100,
        10,
        60,
        10,
        60,
    )
    cut = span(100, 1.5, -30.0, 64)  # 0..100 -> -30..120, in view 0..64: input 20..63 (63 -> 64.5)
    assert (cut.src0, cut.src1, cut.dst0, cut.dst1, cut.out0, cut.out1) == (20, 63, 0, 64, 0, 64)
    small = span(10, 3.0, -1.0, 64)  # 0..10 -> -1..29: input pixel 0 resized to -1..2, of which 0..2 in view
    assert (small.src0, small.src1, small.dst0, small.dst1, small.out0, small.out1) == (0, 10, -1, 29, 0, 29)
    assert torch.equal(small.map(torch.tensor([0.0, 5.0, 10.0])), torch.tensor([0.0, 14.0, 29.0]))
    assert span(100, 0.5, 70.0, 64) is None
