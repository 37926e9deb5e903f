import math

import pytest
import torch

from cvtrain.models.yolo import YOLO, YOLO_SIZES
from cvtrain.models.yolo.backbone import BASE_CHANNELS

# Channels at strides 8, 16, 32 per size: width × min(base, max_channels), rounded up to a multiple of 8.
EXPECTED_LEVEL_CHANNELS = {
    "n": (64, 128, 256),
    "s": (128, 256, 512),
    "m": (192, 384, 576),
    "l": (256, 512, 512),
}


@pytest.mark.parametrize("size", list(YOLO_SIZES))
def test_output_shapes_per_level(size: str) -> None:
    torch.manual_seed(0)
    model = YOLO(num_classes=3, size=size).eval()
    assert model.backbone.out_channels == EXPECTED_LEVEL_CHANNELS[size]
    assert model.neck.out_channels == EXPECTED_LEVEL_CHANNELS[size]
    with torch.no_grad():
        levels = model.raw_outputs(torch.rand(1, 3, 64, 64))
    # 4 sides × 16 DFL bins + 3 classes, at strides 8, 16, 32.
    assert [tuple(level.shape) for level in levels] == [(1, 67, 8, 8), (1, 67, 4, 4), (1, 67, 2, 2)]


def test_flattened_outputs_of_a_non_square_batch() -> None:
    model = YOLO(num_classes=3, size="n").eval()
    with torch.no_grad():
        levels = model.raw_outputs(torch.rand(2, 3, 64, 96))
    assert [tuple(level.shape) for level in levels] == [(2, 67, 8, 12), (2, 67, 4, 6), (2, 67, 2, 3)]
    cls_logits, box_outputs, points, strides = model.flatten_outputs(levels)
    anchors = 8 * 12 + 4 * 6 + 2 * 3
    assert cls_logits.shape == (2, anchors, 3) and box_outputs.shape == (2, anchors, 64)
    assert points.shape == (anchors, 2) and strides.shape == (anchors,)
    # The class logits of anchor 0 are the last 3 channels of level 0 at (0, 0).
    assert torch.equal(cls_logits[:, 0], levels[0][:, 64:, 0, 0])


def test_sizes_grow_in_parameters() -> None:
    counts = [sum(p.numel() for p in YOLO(num_classes=80, size=s).parameters()) for s in ("n", "s", "m")]
    assert counts == sorted(counts)
    assert 2.5e6 < counts[0] < 4e6  # the n model is ~3 M parameters, like YOLOv8n
    assert BASE_CHANNELS[-1] == 1024


def test_single_bin_head_has_four_box_channels() -> None:
    model = YOLO(num_classes=5, reg_max=1).eval()
    with torch.no_grad():
        levels = model.raw_outputs(torch.rand(1, 3, 32, 32))
    assert [level.shape[1] for level in levels] == [9, 9, 9]


def test_head_bias_init_starts_at_the_prior() -> None:
    model = YOLO(num_classes=4, prior_prob=0.01)
    for branch in model.head.cls_branches:
        assert torch.allclose(branch[-1].bias.sigmoid(), torch.full((4,), 0.01))
    for branch in model.head.box_branches:
        assert torch.allclose(branch[-1].bias, torch.ones(64))
    single = YOLO(num_classes=4, reg_max=1)
    for branch in single.head.box_branches:  # softplus(bias) = 2 strides per side
        assert torch.allclose(torch.nn.functional.softplus(branch[-1].bias), torch.full((4,), 2.0))
    assert math.isclose(YOLO_SIZES["m"].depth, 0.67) and YOLO_SIZES["l"].width == 1.0
