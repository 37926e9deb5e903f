"""Anchor points and the box ↔ distance coding of the anchor-free head.

Every cell of every level is one anchor point at the cell centre, in input pixels. A box is coded as its
distances (left, top, right, bottom) from the anchor point, in units of the level's stride. Anchors are ordered
level by level, row-major inside a level: the order of `feature.flatten(2)` for features [B, C, H, W].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def anchor_points(
    feature_sizes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres [A, 2] as (x, y) pixels and the stride [A] of each, for levels of (height, width)."""
    points, point_strides = [], []
    for (height, width), stride in zip(feature_sizes, strides, strict=True):
        ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) * stride
        xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2))
        point_strides.append(torch.full((height * width,), float(stride), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def distances_to_boxes(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(left, top, right, bottom) distances [..., 4] from points [..., 2] → XYXY boxes [..., 4]."""
    left_top, right_bottom = distances.chunk(2, dim=-1)
    return torch.cat([points - left_top, points + right_bottom], dim=-1)


def boxes_to_distances(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """XYXY boxes [..., 4] → (left, top, right, bottom) distances from points [..., 2] (inverse of the above)."""
    top_left, bottom_right = boxes.chunk(2, dim=-1)
    return torch.cat([points - top_left, bottom_right - points], dim=-1)


def decode_distances(box_outputs: torch.Tensor, reg_max: int) -> torch.Tensor:
    """Box-branch outputs [..., 4·reg_max] → distances [..., 4] in strides.

    With DFL (reg_max > 1) each side is a softmax over bins 0..reg_max-1 and the distance is its expectation;
    with reg_max = 1 the single output goes through softplus, so distances are never negative.
    """
    if reg_max == 1:
        return F.softplus(box_outputs)
    probs = box_outputs.unflatten(-1, (4, reg_max)).softmax(dim=-1)
    bins = torch.arange(reg_max, device=box_outputs.device, dtype=probs.dtype)
    return probs @ bins


def decode_boxes(
    box_outputs: torch.Tensor, points: torch.Tensor, strides: torch.Tensor, reg_max: int
) -> torch.Tensor:
    """Box-branch outputs [B, A, 4·reg_max] → XYXY boxes [B, A, 4] in input pixels."""
    distances = decode_distances(box_outputs, reg_max) * strides[:, None]
    return distances_to_boxes(points, distances)
