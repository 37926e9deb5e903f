"""FPN + PAN neck: a top-down path brings semantics to the fine levels, a bottom-up path brings localisation
back to the coarse ones. In and out: feature maps at strides 8, 16, 32 with the backbone's channel counts."""

from __future__ import annotations

import torch
from torch import nn

from cvtrain.models.yolo.backbone import YOLOScale
from cvtrain.models.yolo.blocks import C2f, ConvBNAct


class PANNeck(nn.Module):
    def __init__(self, *, channels: tuple[int, int, int], scale: YOLOScale) -> None:
        super().__init__()
        c3, c4, c5 = channels
        n = scale.blocks(3)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4 = C2f(c_in=c5 + c4, c_out=c4, num_blocks=n, shortcut=False)
        self.top_down3 = C2f(c_in=c4 + c3, c_out=c3, num_blocks=n, shortcut=False)
        self.down3 = ConvBNAct(c_in=c3, c_out=c3, kernel=3, stride=2)
        self.bottom_up4 = C2f(c_in=c3 + c4, c_out=c4, num_blocks=n, shortcut=False)
        self.down4 = ConvBNAct(c_in=c4, c_out=c4, kernel=3, stride=2)
        self.bottom_up5 = C2f(c_in=c4 + c5, c_out=c5, num_blocks=n, shortcut=False)
        self.out_channels = (c3, c4, c5)

    def forward(
        self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3, p4, p5 = features
        t4 = self.top_down4(torch.cat([self.upsample(p5), p4], dim=1))
        out3 = self.top_down3(torch.cat([self.upsample(t4), p3], dim=1))
        out4 = self.bottom_up4(torch.cat([self.down3(out3), t4], dim=1))
        out5 = self.bottom_up5(torch.cat([self.down4(out4), p5], dim=1))
        return out3, out4, out5
