"""Each in-network upsampling mode against a hand-computed 2×2 → 4×4 case, as the lectures draw them."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.upsampling import (
    UPSAMPLE_MODES,
    BilinearUpsample,
    MaxUnpoolUpsample,
    TransposedUpsample,
    bilinear_kernel,
    make_upsample,
)

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)


def test_nearest_repeats_each_value_over_its_block():
    expected = torch.tensor(
        [
            [1.0, 1.0, 2.0, 2.0],
            [1.0, 1.0, 2.0, 2.0],
            [3.0, 3.0, 4.0, 4.0],
            [3.0, 3.0, 4.0, 4.0],
        ]
    )
    assert torch.equal(make_upsample("nearest", 1, 2)(X)[0, 0], expected)


def test_bed_of_nails_puts_each_value_top_left_and_zeros_elsewhere():
    expected = torch.tensor(
        [
            [1.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 0.0, 4.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    assert torch.equal(make_upsample("bed_of_nails", 1, 2)(X)[0, 0], expected)


def test_bed_of_nails_factor_3_and_gradient_reaches_only_the_nails():
    x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2).requires_grad_()
    y = make_upsample("bed_of_nails", 1, 3)(x)
    assert y.shape == (1, 1, 6, 6)
    assert torch.equal(y[0, 0, ::3, ::3], x[0, 0].detach())
    assert y.sum().item() == x.sum().item()  # everything off the nails is zero
    (y * torch.arange(36.0).reshape(1, 1, 6, 6)).sum().backward()
    assert torch.equal(x.grad[0, 0], torch.tensor([[0.0, 3.0], [18.0, 21.0]]))


def test_max_unpool_returns_values_to_the_recorded_argmax_positions():
    x = torch.tensor(
        [
            [1.0, 5.0, 2.0, 0.0],
            [3.0, 4.0, 8.0, 1.0],
            [9.0, 0.0, 1.0, 1.0],
            [2.0, 2.0, 3.0, 7.0],
        ]
    ).reshape(1, 1, 4, 4)
    pooled, indices = nn.MaxPool2d(2, 2, return_indices=True)(x)
    assert torch.equal(pooled[0, 0], torch.tensor([[5.0, 8.0], [9.0, 7.0]]))
    # The decoder's own 2×2 values go where the encoder's maxima were.
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [3.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 4.0],
        ]
    )
    assert torch.equal(make_upsample("max_unpool", 1, 2)(X, indices)[0, 0], expected)


def test_max_unpool_without_indices_is_an_error():
    with pytest.raises(ValueError, match="indices"):
        MaxUnpoolUpsample(factor=2)(X)


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_matches_interpolate(align_corners):
    x = torch.randn(2, 3, 5, 7)
    y = BilinearUpsample(factor=2, align_corners=align_corners)(x)
    expected = F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(y, expected)


def test_bilinear_hand_computed_2x2_with_align_corners():
    # align_corners=True: corners stay, interior points interpolate at thirds: 1, 4/3, 5/3, 2 along the top row.
    y = BilinearUpsample(factor=2, align_corners=True)(X)[0, 0]
    top = torch.tensor([1.0, 4 / 3, 5 / 3, 2.0])
    torch.testing.assert_close(y[0], top)
    torch.testing.assert_close(y[:, 0], torch.tensor([1.0, 5 / 3, 7 / 3, 3.0]))


def test_transposed_conv_sums_overlapping_kernel_copies():
    # Stride 2, kernel 4, padding 1: each input value stamps value * kernel onto a 4×4 patch moving 2 pixels per
    # input step, overlaps add up, and one pixel is cropped on every side. With an all-ones kernel the output
    # pixel is the sum of the inputs whose patch covers it.
    up = TransposedUpsample(channels=1, factor=2)
    assert up.conv.kernel_size == (4, 4) and up.conv.stride == (2, 2)
    with torch.no_grad():
        up.conv.weight.fill_(1.0)
    expected = torch.tensor(
        [
            [1.0, 3.0, 3.0, 2.0],
            [4.0, 10.0, 10.0, 6.0],
            [4.0, 10.0, 10.0, 6.0],
            [3.0, 7.0, 7.0, 4.0],
        ]
    )
    assert torch.equal(up(X)[0, 0], expected)


def test_transposed_conv_single_tap_kernel_copies_input_at_stride():
    up = TransposedUpsample(channels=1, factor=2)
    with torch.no_grad():
        up.conv.weight.zero_()
        up.conv.weight[0, 0, 1, 1] = 1.0  # after the 1-pixel crop, tap (1, 1) lands on the block's top-left
    assert torch.equal(up(X), make_upsample("bed_of_nails", 1, 2)(X))


def test_transposed_starts_as_bilinear_interpolation_inside_the_border():
    assert torch.equal(bilinear_kernel(4)[1], torch.tensor([0.1875, 0.5625, 0.5625, 0.1875]))
    for factor in (2, 3, 8):
        x = torch.randn(1, 3, 6, 5)
        y = TransposedUpsample(channels=3, factor=factor)(x)
        assert y.shape == (1, 3, 6 * factor, 5 * factor)
        reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        inner = (..., slice(factor, -factor), slice(factor, -factor))
        torch.testing.assert_close(y[inner], reference[inner])


def test_transposed_channels_start_independent():
    up = TransposedUpsample(channels=2, factor=2)
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0] = 1.0
    assert up(x)[0, 1].abs().sum() == 0


@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
def test_every_mode_scales_by_the_factor(mode):
    x = torch.randn(2, 4, 3, 5)
    up = make_upsample(mode, 4, 2)
    indices = (
        nn.MaxPool2d(2, 2, return_indices=True)(torch.randn(2, 4, 6, 10))[1] if mode == "max_unpool" else None
    )
    assert up(x, indices).shape == (2, 4, 6, 10)


def test_unknown_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="model.upsample"):
        make_upsample("cubic", 3, 2)
