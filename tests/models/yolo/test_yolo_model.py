import math

import numpy as np
import pytest
import torch

from cvtrain.data.shapes.scenes import render_scene
from cvtrain.models.yolo import YOLO


def rig_constant_head(model: YOLO, *, distance_strides: float, logit: float) -> None:
    """Make every anchor predict the same box size (in strides) and class logit, whatever the image."""
    with torch.no_grad():
        for box, cls in zip(model.head.box_branches, model.head.cls_branches, strict=True):
            box[-1].weight.zero_()
            box[-1].bias.fill_(math.log(math.expm1(distance_strides)))
            cls[-1].weight.zero_()
            cls[-1].bias.fill_(logit)


def expected_boxes(height: int, width: int, padded: tuple[int, int], half_strides: float) -> set[tuple]:
    """Every anchor of the padded grid, its box clipped to the image, kept when it has area."""
    boxes = set()
    for stride in (8, 16, 32):
        for row in range(padded[0] // stride):
            for col in range(padded[1] // stride):
                cx, cy, half = (col + 0.5) * stride, (row + 0.5) * stride, half_strides * stride
                x1, y1 = max(cx - half, 0), max(cy - half, 0)
                x2, y2 = min(cx + half, width), min(cy + half, height)
                if x2 > x1 and y2 > y1:
                    boxes.add((x1, y1, x2, y2))
    return boxes


def test_eval_boxes_are_in_each_images_own_pixels() -> None:
    model = YOLO(num_classes=1, reg_max=1, conf_threshold=0.5, iou_threshold=1.0, max_det=1000).eval()
    rig_constant_head(model, distance_strides=0.25, logit=2.0)
    images = [torch.rand(3, 40, 56), torch.rand(3, 64, 90)]  # one batch padded to 64 × 96
    with torch.no_grad():
        detections = model(images)
    for (height, width), found in zip([(40, 56), (64, 90)], detections, strict=True):
        got = {tuple(round(v, 3) for v in box) for box in found["boxes"].tolist()}
        assert got == expected_boxes(height, width, (64, 96), 0.25)
        assert torch.allclose(found["scores"], torch.full_like(found["scores"], 1 / (1 + math.exp(-2.0))))
        assert (found["labels"] == 0).all()


def test_eval_thresholds_apply() -> None:
    model = YOLO(num_classes=2, reg_max=1, conf_threshold=0.5, max_det=7).eval()
    rig_constant_head(model, distance_strides=0.25, logit=-1.0)
    with torch.no_grad():
        assert all(len(d["boxes"]) == 0 for d in model([torch.rand(3, 32, 32)]))
    rig_constant_head(model, distance_strides=0.25, logit=1.0)
    with torch.no_grad():
        assert [len(d["boxes"]) for d in model([torch.rand(3, 64, 64)])] == [7]


def synthetic_batch(seed: int, size: int = 64) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    images, targets = [], []
    for i in range(2):
        image, objects = render_scene(np.random.default_rng(seed + i), size, 2, labels=[i, 2])
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        targets.append(
            {
                "boxes": torch.tensor([o.box for o in objects], dtype=torch.float32),
                "labels": torch.tensor([o.label for o in objects]),
            }
        )
    return images, targets


@pytest.mark.parametrize("options", [{}, {"reg_max": 1, "cls_loss": "varifocal", "box_loss": "giou"}])
def test_a_few_steps_on_synthetic_images_reduce_the_loss(options: dict) -> None:
    torch.manual_seed(0)
    model = YOLO(num_classes=5, size="n", **options).train()
    images, targets = synthetic_batch(seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(10):
        losses = model(images, targets)
        assert set(losses) == {"loss_cls", "loss_box"} | ({"loss_dfl"} if model.reg_max > 1 else set())
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert all(math.isfinite(v) for v in history)
    assert history[-1] < 0.7 * history[0], history


def test_training_mode_needs_targets() -> None:
    with pytest.raises(ValueError, match="needs targets"):
        YOLO(num_classes=2).train()([torch.rand(3, 32, 32)])
