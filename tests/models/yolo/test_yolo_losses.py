import math

import pytest
import torch

from cvtrain.models.yolo.assigner import TaskAlignedAssigner
from cvtrain.models.yolo.coder import anchor_points
from cvtrain.models.yolo.losses import YOLOLoss, distribution_focal_loss, varifocal_loss

LOG2 = math.log(2.0)


def test_varifocal_loss_by_hand() -> None:
    logits = torch.tensor([0.0, 0.0, math.log(3.0)])  # p = 0.5, 0.5, 0.75
    targets = torch.tensor([0.8, 0.0, 0.0])
    loss = varifocal_loss(logits, targets, alpha=0.75, gamma=2.0)
    # Positive: weight q, BCE(p=0.5, q) = log 2. Negative: weight α·p^γ, BCE = -log(1 - p).
    expected = [0.8 * LOG2, 0.75 * 0.25 * LOG2, 0.75 * 0.75**2 * math.log(4.0)]
    assert torch.allclose(loss, torch.tensor(expected), atol=1e-6)


def test_distribution_focal_loss_by_hand() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    log_probs = torch.log_softmax(logits, dim=-1)[0].tolist()
    # Target 1.3 lies between bins 1 and 2: 70 % towards bin 1, 30 % towards bin 2.
    expected = -(0.7 * log_probs[1] + 0.3 * log_probs[2])
    assert distribution_focal_loss(logits, torch.tensor([1.3])).item() == pytest.approx(expected, abs=1e-6)
    # On a bin exactly, only that bin counts.
    assert distribution_focal_loss(logits, torch.tensor([2.0])).item() == pytest.approx(
        -log_probs[2], abs=1e-6
    )


def make_loss(reg_max: int, cls_loss: str = "bce", box_loss: str = "giou") -> YOLOLoss:
    return YOLOLoss(
        num_classes=2,
        reg_max=reg_max,
        assigner=TaskAlignedAssigner(topk=10),
        cls_loss=cls_loss,
        box_loss=box_loss,
        cls_weight=1.0,
        box_weight=1.0,
        dfl_weight=1.0,
    )


# A 2×2 grid at stride 8 (anchor centres 4 and 12) and one GT [0, 0, 8, 8] of class 0: only anchor 0 is inside.
POINTS, STRIDES = anchor_points([(2, 2)], [8])
GT = dict(
    gt_labels=torch.tensor([[0]]),
    gt_boxes=torch.tensor([[[0.0, 0.0, 8.0, 8.0]]]),
    gt_mask=torch.tensor([[True]]),
)


def test_yolo_loss_by_hand_with_dfl() -> None:
    # All outputs zero: every class probability is 0.5; uniform DFL bins (reg_max 4) give a distance of
    # 1.5 strides = 12 px per side, so anchor 0 predicts [-8, -8, 16, 16]: IoU with the GT = 64 / 576 = 1/9.
    cls_logits, box_outputs = torch.zeros(1, 4, 2), torch.zeros(1, 4, 16)
    losses = make_loss(reg_max=4)(cls_logits, box_outputs, POINTS, STRIDES, **GT)
    iou = 1 / 9  # the soft class target of the single positive, and its weight
    normaliser = 1.0  # the sum of soft targets (1/9), clamped to at least 1
    assert losses["loss_cls"].item() == pytest.approx(8 * LOG2 / normaliser, rel=1e-5)  # 8 BCE terms at p=0.5
    # GIoU: the enclosing box is the prediction itself, so GIoU = IoU.
    assert losses["loss_box"].item() == pytest.approx((1 - iou) * iou / normaliser, rel=1e-5)
    # DFL: target distance 4 px = 0.5 strides per side → half on bin 0, half on bin 1, each at log-prob -log 4.
    assert losses["loss_dfl"].item() == pytest.approx(math.log(4.0) * iou / normaliser, rel=1e-5)


def softplus_inverse(values: list[float]) -> torch.Tensor:
    return torch.tensor([math.log(math.expm1(v)) for v in values])


@pytest.mark.parametrize("box_loss", ["ciou", "giou"])
def test_yolo_loss_by_hand_without_dfl(box_loss: str) -> None:
    # reg_max 1: anchor 0 at (4, 4) predicts distances (2, 2, 4, 4) px = (0.25, 0.25, 0.5, 0.5) strides,
    # i.e. the box [2, 2, 8, 8]: IoU with [0, 0, 8, 8] = 36 / 64.
    box_outputs = torch.zeros(1, 4, 4)
    box_outputs[0, 0] = softplus_inverse([0.25, 0.25, 0.5, 0.5])
    losses = make_loss(reg_max=1, box_loss=box_loss)(torch.zeros(1, 4, 2), box_outputs, POINTS, STRIDES, **GT)
    iou = 36 / 64
    # The prediction lies inside the GT: GIoU = IoU. CIoU adds the centre distance² (2) over the enclosing
    # diagonal² (128); both boxes are square, so the aspect-ratio term is 0.
    penalty = 2 / 128 if box_loss == "ciou" else 0.0
    assert losses["loss_box"].item() == pytest.approx((1 - iou + penalty) * iou, rel=1e-5)
    assert "loss_dfl" not in losses


def test_varifocal_classification_by_hand() -> None:
    box_outputs = torch.zeros(1, 4, 4)
    box_outputs[0, 0] = softplus_inverse([0.25, 0.25, 0.5, 0.5])
    losses = make_loss(reg_max=1, cls_loss="varifocal")(
        torch.zeros(1, 4, 2), box_outputs, POINTS, STRIDES, **GT
    )
    iou = 36 / 64
    # One positive (target q = IoU, weight q) and 7 negatives (weight 0.75 · 0.5²), all BCE terms log 2.
    assert losses["loss_cls"].item() == pytest.approx((iou + 7 * 0.75 * 0.25) * LOG2, rel=1e-5)


def test_without_objects_only_classification_counts_and_gradients_flow() -> None:
    cls_logits = torch.zeros(1, 4, 2, requires_grad=True)
    box_outputs = torch.randn(1, 4, 16, requires_grad=True)
    empty = dict(
        gt_labels=torch.zeros(1, 0, dtype=torch.long),
        gt_boxes=torch.zeros(1, 0, 4),
        gt_mask=torch.zeros(1, 0).bool(),
    )
    losses = make_loss(reg_max=4)(cls_logits, box_outputs, POINTS, STRIDES, **empty)
    assert losses["loss_box"].item() == 0 and losses["loss_dfl"].item() == 0
    assert losses["loss_cls"].item() == pytest.approx(8 * LOG2, rel=1e-5)
    sum(losses.values()).backward()
    assert box_outputs.grad is not None and cls_logits.grad is not None


def test_loss_weights_scale_their_terms() -> None:
    weighted = YOLOLoss(
        num_classes=2,
        reg_max=4,
        assigner=TaskAlignedAssigner(),
        cls_weight=0.5,
        box_weight=7.5,
        dfl_weight=1.5,
    )
    args = (torch.zeros(1, 4, 2), torch.zeros(1, 4, 16), POINTS, STRIDES)
    plain, scaled = make_loss(reg_max=4)(*args, **GT), weighted(*args, **GT)
    for key, weight in (("loss_cls", 0.5), ("loss_box", 7.5), ("loss_dfl", 1.5)):
        assert scaled[key].item() == pytest.approx(weight * plain[key].item(), rel=1e-6)
