"""Decoupled detection head: per level, one conv branch for class scores and one for box distances.

Each level outputs [B, 4·reg_max + C, H, W]: the first 4·reg_max channels are the box branch (per side either
`reg_max` DFL bin logits, or with reg_max=1 one raw distance), the last C channels are class logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cvtrain.models.yolo.blocks import ConvBNAct

# With reg_max=1 a side's distance is softplus(raw) strides; this bias starts every box 2 strides from its
# anchor on each side (4 strides wide), a size every level can refine from.
INITIAL_DISTANCE_STRIDES = 2.0


class DecoupledHead(nn.Module):
    def __init__(
        self, *, channels: tuple[int, ...], num_classes: int, reg_max: int, prior_prob: float = 0.01
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        box_hidden = max(16, channels[0] // 4, 4 * reg_max)
        cls_hidden = max(channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c_in=c, c_out=box_hidden, kernel=3),
                ConvBNAct(c_in=box_hidden, c_out=box_hidden, kernel=3),
                nn.Conv2d(box_hidden, 4 * reg_max, 1),
            )
            for c in channels
        )
        self.cls_branches = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(c_in=c, c_out=cls_hidden, kernel=3),
                ConvBNAct(c_in=cls_hidden, c_out=cls_hidden, kernel=3),
                nn.Conv2d(cls_hidden, num_classes, 1),
            )
            for c in channels
        )
        self.reset_biases(prior_prob)

    @torch.no_grad()
    def reset_biases(self, prior_prob: float) -> None:
        # Every anchor starts as background with probability 1 - prior_prob, so the first steps are not
        # dominated by the loss of thousands of easy negatives (the RetinaNet / YOLO prior).
        cls_bias = -math.log((1 - prior_prob) / prior_prob)
        # DFL: equal logits give uniform bins (a mid-range distance); reg_max=1: softplus⁻¹ of the initial size.
        box_bias = 1.0 if self.reg_max > 1 else math.log(math.expm1(INITIAL_DISTANCE_STRIDES))
        for branch in self.cls_branches:
            branch[-1].bias.fill_(cls_bias)
        for branch in self.box_branches:
            branch[-1].bias.fill_(box_bias)

    def forward(self, features: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        return [
            torch.cat([box(x), cls(x)], dim=1)
            for x, box, cls in zip(features, self.box_branches, self.cls_branches, strict=True)
        ]
