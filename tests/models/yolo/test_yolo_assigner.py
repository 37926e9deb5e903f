import torch

from cvtrain.models.yolo.assigner import TaskAlignedAssigner, points_inside_boxes
from cvtrain.models.yolo.coder import anchor_points

# A 4×4 grid at stride 8: anchor centres at 4, 12, 20, 28 on both axes; anchor index = row * 4 + col.
POINTS, _ = anchor_points([(4, 4)], [8])
NUM_CLASSES = 3


def anchor(col: int, row: int) -> int:
    return row * 4 + col


def small_boxes_around_anchors(half: float = 1.0) -> torch.Tensor:
    """Every anchor predicts a tiny box around its own centre: [1, 16, 4]."""
    return torch.cat([POINTS - half, POINTS + half], dim=-1)[None]


def assign(assigner, pred_boxes, gt_boxes, gt_labels, gt_mask=None, scores=None):
    gt_boxes = torch.tensor(gt_boxes, dtype=torch.float32)[None]
    gt_labels = torch.tensor(gt_labels)[None]
    gt_mask = torch.ones_like(gt_labels, dtype=torch.bool) if gt_mask is None else torch.tensor(gt_mask)[None]
    scores = torch.full((1, 16, NUM_CLASSES), 0.5) if scores is None else scores
    return assigner(scores, pred_boxes, POINTS, gt_labels, gt_boxes, gt_mask)


def test_points_inside_boxes() -> None:
    inside = points_inside_boxes(POINTS, torch.tensor([[[0.0, 0.0, 16.0, 16.0], [12.0, 0.0, 32.0, 8.0]]]))
    assert inside[0, 0].nonzero().flatten().tolist() == [
        anchor(0, 0),
        anchor(1, 0),
        anchor(0, 1),
        anchor(1, 1),
    ]
    # A centre exactly on the border (x = 12) is not inside.
    assert inside[0, 1].nonzero().flatten().tolist() == [anchor(2, 0), anchor(3, 0)]


def test_topk_picks_the_best_aligned_anchors_inside_the_box() -> None:
    pred = small_boxes_around_anchors()
    pred[0, anchor(1, 1)] = torch.tensor([0.0, 0.0, 16.0, 16.0])  # IoU 1 with the GT
    pred[0, anchor(0, 0)] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # IoU 0.25
    pred[0, anchor(2, 2)] = torch.tensor([0.0, 0.0, 16.0, 16.0])  # perfect box, but its centre is outside
    result = assign(TaskAlignedAssigner(topk=2, alpha=1.0, beta=1.0), pred, [[0, 0, 16, 16]], [2])

    assert result.fg_mask[0].nonzero().flatten().tolist() == [anchor(0, 0), anchor(1, 1)]
    assert result.target_labels[0, anchor(1, 1)] == 2
    assert result.target_boxes[0, anchor(0, 0)].tolist() == [0.0, 0.0, 16.0, 16.0]
    # Soft targets: t = s·IoU rescaled so the best anchor reaches the best IoU (1.0) → 1.0 and 0.25.
    assert torch.allclose(result.target_scores[0, anchor(1, 1)], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(result.target_scores[0, anchor(0, 0)], torch.tensor([0.0, 0.0, 0.25]))
    assert result.target_scores[0, ~result.fg_mask[0]].abs().sum() == 0


def test_class_score_changes_the_ranking() -> None:
    pred = small_boxes_around_anchors()
    pred[0, anchor(0, 0)] = torch.tensor([0.0, 0.0, 8.0, 16.0])  # IoU 0.5
    pred[0, anchor(1, 1)] = torch.tensor([0.0, 0.0, 16.0, 12.0])  # IoU 0.75
    scores = torch.full((1, 16, NUM_CLASSES), 0.1)
    scores[0, anchor(0, 0), 1] = 0.9  # a confident anchor beats a better box when alpha dominates
    result = assign(
        TaskAlignedAssigner(topk=1, alpha=1.0, beta=1.0), pred, [[0, 0, 16, 16]], [1], scores=scores
    )
    assert result.fg_mask[0].nonzero().flatten().tolist() == [anchor(0, 0)]
    # Same inputs but IoU weighted heavily: the better box wins.
    result = assign(
        TaskAlignedAssigner(topk=1, alpha=0.1, beta=10.0), pred, [[0, 0, 16, 16]], [1], scores=scores
    )
    assert result.fg_mask[0].nonzero().flatten().tolist() == [anchor(1, 1)]


def test_padding_gts_are_ignored() -> None:
    pred = small_boxes_around_anchors(half=4.0)
    result = assign(
        TaskAlignedAssigner(topk=10), pred, [[0, 0, 16, 16], [16, 16, 32, 32]], [0, 1], gt_mask=[True, False]
    )
    positives = result.fg_mask[0].nonzero().flatten().tolist()
    assert positives == [anchor(0, 0), anchor(1, 0), anchor(0, 1), anchor(1, 1)]
    assert (result.gt_index[0, result.fg_mask[0]] == 0).all()
    assert result.target_scores[0, :, 1].sum() == 0


def test_an_anchor_claimed_by_two_gts_keeps_the_higher_iou() -> None:
    pred = small_boxes_around_anchors()
    pred[0, anchor(1, 1)] = torch.tensor([8.0, 8.0, 16.0, 16.0])
    # Both GTs contain anchor (1, 1); its box overlaps the second GT far more.
    gts = [[0, 0, 24, 24], [6, 6, 17, 17]]
    result = assign(TaskAlignedAssigner(topk=10), pred, gts, [0, 1])
    assert result.fg_mask[0, anchor(1, 1)]
    assert result.gt_index[0, anchor(1, 1)] == 1
    assert result.target_labels[0, anchor(1, 1)] == 1
    assert result.target_scores[0, anchor(1, 1), 0] == 0


def test_no_gt_means_all_background() -> None:
    assigner = TaskAlignedAssigner()
    scores = torch.rand(2, 16, NUM_CLASSES)
    pred = small_boxes_around_anchors().expand(2, -1, -1)
    for count in (0, 2):
        result = assigner(
            scores,
            pred,
            POINTS,
            torch.zeros(2, count, dtype=torch.long),
            torch.zeros(2, count, 4),
            torch.zeros(2, count, dtype=torch.bool),
        )
        assert not result.fg_mask.any()
        assert result.target_scores.abs().sum() == 0


def test_random_cases_respect_the_invariants() -> None:
    generator = torch.Generator().manual_seed(0)
    points, _ = anchor_points([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    batch, count, topk = 3, 5, 4
    corners = torch.rand(batch, count, 2, 2, generator=generator) * 64
    gt_boxes = torch.cat([corners.amin(dim=2), corners.amax(dim=2)], dim=-1)
    gt_labels = torch.randint(0, NUM_CLASSES, (batch, count), generator=generator)
    gt_mask = torch.rand(batch, count, generator=generator) > 0.3
    centres = torch.rand(batch, len(points), 2, generator=generator) * 64
    pred_boxes = torch.cat([centres - 6, centres + 6], dim=-1)
    scores = torch.rand(batch, len(points), NUM_CLASSES, generator=generator)
    result = TaskAlignedAssigner(topk=topk)(scores, pred_boxes, points, gt_labels, gt_boxes, gt_mask)

    for b in range(batch):
        fg = result.fg_mask[b]
        assigned = result.gt_index[b, fg]
        assert gt_mask[b, assigned].all(), "a padding GT received an anchor"
        x, y = points[fg].unbind(dim=-1)
        x1, y1, x2, y2 = gt_boxes[b, assigned].unbind(dim=-1)
        assert ((x > x1) & (x < x2) & (y > y1) & (y < y2)).all(), (
            "an anchor outside its GT box became positive"
        )
        assert (torch.bincount(assigned, minlength=count) <= topk).all()
        assert torch.equal(result.target_labels[b, fg], gt_labels[b, assigned])
        assert (result.target_scores[b, fg].amax(dim=-1) <= 1.0 + 1e-6).all()
    assert result.fg_mask.any()


def test_zero_area_predictions_and_padding_give_no_nan() -> None:
    pred = torch.cat([POINTS, POINTS], dim=-1)[None]  # every predicted box has zero area
    result = assign(
        TaskAlignedAssigner(), pred, [[0, 0, 16, 16], [0, 0, 0, 0]], [0, 1], gt_mask=[True, False]
    )
    assert torch.isfinite(result.target_scores).all()
    assert result.fg_mask[0].sum() == 4  # the anchors inside the real GT, with zero soft targets
