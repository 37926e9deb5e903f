"""The parity check of cvtrain/commands/export_formats.py on hand-made outputs: numpy.allclose's rule, the worst
difference per output, and messages that give the difference and the tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cvtrain.commands.export_formats import ExportMismatch, check_format, compare
from cvtrain.errors import ConfigError


class Double(nn.Module):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images * 2, images.sum(dim=(1, 2, 3))


def offset_runner(offset: float):
    def run(batch: torch.Tensor) -> list[np.ndarray]:
        return [t.numpy() + offset for t in Double()(batch)]

    return run


def test_outputs_within_tolerance_pass_and_record_the_worst_difference() -> None:
    batches = [torch.ones(2, 3, 4, 4), torch.ones(1, 3, 4, 4)]
    record = compare(Double(), offset_runner(5e-5), batches, output_names=["x2", "sum"], rtol=1e-4, atol=1e-4)
    assert record["max_abs_diff"]["x2"] == pytest.approx(5e-5, rel=1e-2)  # float32 rounding of 2 + 5e-5
    assert record["batches"] == [[2, 3, 4, 4], [1, 3, 4, 4]] and (record["rtol"], record["atol"]) == (
        1e-4,
        1e-4,
    )


def test_relative_tolerance_scales_with_the_value() -> None:
    # |diff| 1e-3 on values of 96 (the sums): within atol 1e-4 + rtol 1e-4 x 96; on values of 2 it is not.
    with pytest.raises(
        ExportMismatch, match=r"output 'x2' differs .* max abs difference 0\.001, tolerance atol=0\.0001"
    ):
        compare(
            Double(),
            offset_runner(1e-3),
            [torch.ones(2, 3, 4, 4)],
            output_names=["x2", "sum"],
            rtol=1e-4,
            atol=1e-4,
        )


def test_a_shape_difference_is_named() -> None:
    def wrong(batch: torch.Tensor) -> list[np.ndarray]:
        return [np.zeros((1, 3, 4, 4), np.float32), np.zeros((1,), np.float32)]

    with pytest.raises(
        ExportMismatch, match=r"'x2' has shape \[1, 3, 4, 4\] in the exported file but \[2, 3, 4, 4\]"
    ):
        compare(Double(), wrong, [torch.ones(2, 3, 4, 4)], output_names=["x2", "sum"], rtol=1e-4, atol=1e-4)


def test_unknown_format_lists_the_formats() -> None:
    with pytest.raises(ConfigError, match="choose one of onnx, torchscript"):
        check_format("tflite")
