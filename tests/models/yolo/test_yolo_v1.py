import math

import numpy as np
import pytest
import torch

from cvtrain.data.shapes.scenes import render_scene
from cvtrain.errors import ConfigError
from cvtrain.models.yolo import YOLOv1
from cvtrain.models.yolo.v1_loss import (
    YOLOv1Loss,
    cell_boxes_to_xyxy,
    decode_predictions,
    decode_targets,
    encode_targets,
)


def test_target_encoding_round_trip() -> None:
    boxes = torch.tensor([[0.05, 0.10, 0.25, 0.40], [0.50, 0.50, 0.98, 0.90], [0.30, 0.70, 0.34, 0.72]])
    labels = torch.tensor([2, 0, 1])
    grid = encode_targets(boxes, labels, grid_size=7, num_classes=3)
    assert grid.shape == (7, 7, 8)
    # Box 0 has its centre (0.15, 0.25) in row 1, column 1; x, y relative to the cell, w, h to the image.
    assert torch.allclose(grid[1, 1], torch.tensor([1, 0.05, 0.75, 0.20, 0.30, 0, 0, 1]), atol=1e-5)
    decoded_boxes, decoded_labels = decode_targets(grid)
    order = decoded_boxes[:, 0].argsort()  # decoding comes in grid order
    assert torch.allclose(decoded_boxes[order], boxes[boxes[:, 0].argsort()], atol=1e-5)
    assert decoded_labels[order].tolist() == labels[boxes[:, 0].argsort()].tolist()


def test_one_object_per_cell_keeps_the_largest() -> None:
    boxes = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.02, 0.02, 0.18, 0.18]])
    grid = encode_targets(boxes, torch.tensor([1, 0]), grid_size=2, num_classes=2)
    decoded, labels = decode_targets(grid)
    assert torch.allclose(decoded, boxes[:1], atol=1e-6) and labels.tolist() == [1]
    assert grid[0, 0, 5:].tolist() == [0.0, 1.0]


def test_cell_boxes_to_xyxy_by_hand() -> None:
    xywh = torch.zeros(2, 2, 1, 4)
    xywh[1, 0, 0] = torch.tensor([0.5, 0.5, 0.2, 0.4])  # row 1, column 0 of a 2×2 grid: centre (0.25, 0.75)
    assert torch.allclose(cell_boxes_to_xyxy(xywh)[1, 0, 0], torch.tensor([0.15, 0.55, 0.35, 0.95]))


def perfect_prediction(target: torch.Tensor, boxes_per_cell: int = 2) -> torch.Tensor:
    """Predictor 0 of every object cell reproduces the GT with confidence 1; everything else is 0."""
    grid = target.shape[0]
    pred = torch.zeros(grid, grid, 5 * boxes_per_cell + target.shape[-1] - 5)
    pred[..., 0:2] = target[..., 1:3]
    pred[..., 2:4] = target[..., 3:5].sqrt()
    pred[..., 4] = target[..., 0]
    pred[..., 5 * boxes_per_cell :] = target[..., 5:]
    return pred


def test_loss_is_zero_for_a_perfect_prediction_and_by_hand_otherwise() -> None:
    boxes = torch.tensor([[0.1, 0.1, 0.4, 0.3]])
    target = encode_targets(boxes, torch.tensor([1]), grid_size=2, num_classes=2)[None]
    pred = perfect_prediction(target[0])[None]
    loss = YOLOv1Loss(boxes_per_cell=2)
    assert all(v.item() == pytest.approx(0.0, abs=1e-6) for v in loss(pred, target).values())

    # Shift predictor 0's x by 0.1 (IoU stays the highest of the two), set its confidence to 0.5, give a
    # background cell a confidence of 0.4 and the object cell a class error of (0.3, -0.3).
    pred[0, 0, 0, 0] += 0.1
    pred[0, 0, 0, 4] = 0.5
    pred[0, 1, 1, 9] = 0.4
    pred[0, 0, 0, 10:12] = torch.tensor([0.3, 0.7])
    shifted = torch.tensor([0.1 + 0.1 * 0.5, 0.1, 0.4 + 0.1 * 0.5, 0.3])  # a cell is half the image wide
    inter = (0.4 - 0.15) * 0.2
    iou = inter / (2 * 0.3 * 0.2 - inter)
    assert shifted[2] - shifted[0] == pytest.approx(0.3)
    losses = loss(pred, target)
    assert losses["loss_coord"].item() == pytest.approx(5.0 * 0.1**2, rel=1e-5)
    assert losses["loss_obj"].item() == pytest.approx((0.5 - iou) ** 2, rel=1e-5)
    assert losses["loss_noobj"].item() == pytest.approx(0.5 * 0.4**2, rel=1e-5)
    assert losses["loss_cls"].item() == pytest.approx(2 * 0.3**2, rel=1e-5)


def test_the_predictor_with_the_highest_iou_is_responsible() -> None:
    target = encode_targets(
        torch.tensor([[0.1, 0.1, 0.4, 0.4]]), torch.tensor([0]), grid_size=1, num_classes=1
    )
    pred = torch.zeros(1, 1, 1, 11)
    pred[..., 0:5] = torch.tensor([0.9, 0.9, 0.1, 0.1, 0.3])  # far off: IoU 0
    pred[..., 5:10] = torch.tensor([0.25, 0.25, math.sqrt(0.3), math.sqrt(0.3), 0.6])  # exact: IoU 1
    pred[..., 10] = 1.0
    losses = YOLOv1Loss(boxes_per_cell=2, lambda_noobj=1.0)(pred, target[None])
    assert losses["loss_coord"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_obj"].item() == pytest.approx((0.6 - 1.0) ** 2, rel=1e-4)
    assert losses["loss_noobj"].item() == pytest.approx(0.3**2, rel=1e-5)


def test_decode_predictions_scores_are_confidence_times_class_probability() -> None:
    target = encode_targets(
        torch.tensor([[0.1, 0.1, 0.4, 0.3]]), torch.tensor([1]), grid_size=2, num_classes=2
    )
    pred = perfect_prediction(target)
    pred[0, 0, 4] = 0.8
    pred[0, 0, 10:12] = torch.tensor([0.25, 0.75])
    boxes, scores = decode_predictions(pred, boxes_per_cell=2)
    assert boxes.shape == (8, 4) and scores.shape == (8, 2)
    assert torch.allclose(boxes[0], torch.tensor([0.1, 0.1, 0.4, 0.3]), atol=1e-6)
    assert torch.allclose(scores[0], torch.tensor([0.2, 0.6]))
    assert scores[1:].abs().sum() == 0


def tiny_v1(**options) -> YOLOv1:
    defaults = dict(
        num_classes=3, grid_size=4, image_size=128, width=8, head_channels=32, hidden=64, dropout=0.0
    )
    return YOLOv1(**(defaults | options))


@pytest.mark.parametrize("head", ["conv", "fc"])
def test_eval_boxes_map_back_to_each_images_own_pixels(head: str) -> None:
    model = tiny_v1(head=head, boxes_per_cell=1, conf_threshold=0.1, iou_threshold=1.0).eval()
    # Every cell predicts a centred box a quarter of the image wide and high (sigmoid(0) = 0.5 = √0.25), class 2.
    bias = torch.tensor([0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 5.0])
    with torch.no_grad():
        model.predictor.weight.zero_()
        model.predictor.bias.copy_(bias if head == "conv" else bias.repeat(16))
        detections = model([torch.rand(3, 40, 100), torch.rand(3, 200, 60)])
    for (height, width), found in zip([(40, 100), (200, 60)], detections, strict=True):
        expected = {
            (round((col + 0.5) / 4 * width - width / 8, 3), round((row + 0.5) / 4 * height - height / 8, 3))
            for row in range(4)
            for col in range(4)
        }
        assert len(found["boxes"]) == 16 and (found["labels"] == 2).all()
        assert {(round(b[0], 3), round(b[1], 3)) for b in found["boxes"].tolist()} == expected
        assert torch.allclose(found["boxes"][:, 2] - found["boxes"][:, 0], torch.tensor(width / 4))


@pytest.mark.parametrize("head", ["conv", "fc"])
def test_a_few_steps_on_synthetic_images_reduce_the_loss(head: str) -> None:
    torch.manual_seed(0)
    model = tiny_v1(head=head).train()
    images, targets = [], []
    for seed in range(2):
        image, objects = render_scene(np.random.default_rng(seed), 96, 2)
        images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        boxes = torch.tensor([o.box for o in objects], dtype=torch.float32)
        targets.append({"boxes": boxes, "labels": torch.tensor([o.label for o in objects]) % 3})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(12):
        losses = model(images, targets)
        assert set(losses) == {"loss_coord", "loss_obj", "loss_noobj", "loss_cls"}
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.5 * history[0], history


def test_resnet18_trunk_and_missing_pretrained_weights(tmp_path, monkeypatch) -> None:
    model = tiny_v1(backbone="resnet18").eval()
    with torch.no_grad():
        assert model.grid_outputs(torch.rand(1, 3, 128, 128)).shape == (1, 4, 4, 13)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="resnet18"):
        tiny_v1(backbone="resnet18", pretrained=True)


@pytest.mark.parametrize("head", ["conv", "fc"])
def test_outputs_stay_in_range(head: str) -> None:
    model = tiny_v1(head=head).eval()
    with torch.no_grad():
        pred = model.grid_outputs(torch.rand(2, 3, 128, 128))
    assert pred.shape == (2, 4, 4, 13)
    assert ((pred[..., :10] > 0) & (pred[..., :10] < 1)).all()
    assert torch.allclose(pred[..., 10:].sum(-1), torch.ones(2, 4, 4))
