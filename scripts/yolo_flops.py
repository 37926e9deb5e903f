"""Parameter counts and FLOPs of our YOLO models, for the README model table.

    python scripts/yolo_flops.py [--num-classes 80] [--image-size 640]

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` for one forward pass of one image in eval mode
(the network only: no NMS). A multiply-add counts as 2 FLOPs, the convention of the published YOLO tables.
`yolo_v1` runs at its own fixed input size (it resizes every image to `image_size` inside the model).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from cvtrain.models.yolo import YOLO, YOLO_SIZES, YOLOv1


def count(
    model: torch.nn.Module, forward: Callable[[torch.Tensor], object], image_size: int
) -> tuple[float, float]:
    """(parameters in millions, GFLOPs of one image at image_size²)."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    batch = torch.rand(1, 3, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(batch)
    return params, counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--image-size", type=int, default=640)
    args = parser.parse_args()

    table = Table(title=f"YOLO models, {args.num_classes} classes")
    for column in ("model", "size", "depth", "width", "input", "params (M)", "GFLOPs"):
        table.add_column(column, justify="left" if column in ("model", "size") else "right")
    for size, scale in YOLO_SIZES.items():
        model = YOLO(num_classes=args.num_classes, size=size).eval()
        params, gflops = count(model, model.raw_outputs, args.image_size)
        table.add_row(
            "yolo",
            size,
            f"{scale.depth:.2f}",
            f"{scale.width:.2f}",
            str(args.image_size),
            f"{params:.2f}",
            f"{gflops:.1f}",
        )
    for backbone, head in (("darknet", "conv"), ("darknet", "fc"), ("resnet18", "conv")):
        model = YOLOv1(num_classes=args.num_classes, backbone=backbone, head=head).eval()
        params, gflops = count(model, model.grid_outputs, model.image_size)
        row = (
            "yolo_v1",
            f"{backbone}, {head} head",
            "",
            "",
            str(model.image_size),
            f"{params:.2f}",
            f"{gflops:.1f}",
        )
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
