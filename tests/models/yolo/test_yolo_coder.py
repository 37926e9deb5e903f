import math

import torch

from cvtrain.models.yolo.coder import (
    anchor_points,
    boxes_to_distances,
    decode_boxes,
    decode_distances,
    distances_to_boxes,
)


def test_anchor_points_are_cell_centres_in_flatten_order() -> None:
    points, strides = anchor_points([(2, 3), (1, 2)], [8, 16])
    expected = [(4, 4), (12, 4), (20, 4), (4, 12), (12, 12), (20, 12), (8, 8), (24, 8)]
    assert points.tolist() == [list(map(float, p)) for p in expected]
    assert strides.tolist() == [8.0] * 6 + [16.0] * 2
    # The order matches flattening a [B, C, H, W] feature map: row-major, x fastest.
    feature = torch.arange(6.0).view(1, 1, 2, 3)
    assert feature.flatten(2)[0, 0, 1].item() == 1.0  # (row 0, col 1) → second anchor, x = 12
    assert points[1].tolist() == [12.0, 4.0]


def test_decoding_inverts_encoding() -> None:
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(50, 2, generator=generator) * 100
    distances = torch.rand(50, 4, generator=generator) * 40
    boxes = distances_to_boxes(points, distances)
    assert torch.allclose(boxes_to_distances(points, boxes), distances, atol=1e-5)
    assert torch.allclose(distances_to_boxes(points, boxes_to_distances(points, boxes)), boxes, atol=1e-5)
    assert (boxes[:, 2:] >= boxes[:, :2]).all()


def test_distances_to_boxes_by_hand() -> None:
    box = distances_to_boxes(torch.tensor([10.0, 20.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert box.tolist() == [9.0, 18.0, 13.0, 24.0]


def test_dfl_expectation() -> None:
    reg_max = 8
    peaked = torch.full((4, reg_max), -30.0)
    peaked[torch.arange(4), torch.tensor([0, 3, 5, 7])] = 30.0
    assert torch.allclose(
        decode_distances(peaked.flatten(), reg_max), torch.tensor([0.0, 3.0, 5.0, 7.0]), atol=1e-4
    )
    uniform = torch.zeros(2, 4 * reg_max)
    assert torch.allclose(decode_distances(uniform, reg_max), torch.full((2, 4), (reg_max - 1) / 2))
    # Two equal bins: the expectation lies half way between them.
    split = torch.full((4, reg_max), -30.0)
    split[:, 2:4] = 0.0
    assert torch.allclose(decode_distances(split.flatten(), reg_max), torch.full((4,), 2.5), atol=1e-4)


def test_single_bin_distances_are_softplus() -> None:
    raw = torch.tensor([-5.0, 0.0, 1.0, 10.0])
    expected = [math.log1p(math.exp(v)) for v in raw.tolist()]
    assert torch.allclose(decode_distances(raw, 1), torch.tensor(expected))
    assert (decode_distances(torch.randn(100, 4) * 10, 1) >= 0).all()


def test_decode_boxes_scales_by_stride() -> None:
    points, strides = anchor_points([(1, 1), (1, 1)], [8, 32])
    # reg_max=2, each side's bins [-inf, +inf] → distance 1 stride.
    outputs = torch.tensor([-30.0, 30.0] * 4).repeat(1, 2, 1)
    boxes = decode_boxes(outputs, points, strides, reg_max=2)
    assert torch.allclose(boxes[0, 0], torch.tensor([-4.0, -4.0, 12.0, 12.0]), atol=1e-3)
    assert torch.allclose(boxes[0, 1], torch.tensor([-16.0, -16.0, 48.0, 48.0]), atol=1e-3)
