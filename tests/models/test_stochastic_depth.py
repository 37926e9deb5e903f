"""Stochastic depth on torchvision ResNets: linear drop probabilities, identity blocks when dropped, the plain
network in evaluation, gradients, and clear errors."""

import pytest
import torch
from torch import nn
from torchvision import models
from torchvision.ops import FrozenBatchNorm2d, StochasticDepth

from cvtrain.errors import ConfigError
from cvtrain.models.classification import build_classifier
from cvtrain.models.stochastic_depth import drop_probabilities, residual_blocks


def resnet(arch: str = "resnet18", **options: object) -> nn.Module:
    torch.manual_seed(0)
    return build_classifier(arch=arch, num_classes=5, **options)


def reference(arch: str = "resnet18") -> nn.Module:
    torch.manual_seed(0)
    return models.get_model(arch, weights=None, num_classes=5)


def layers(model: nn.Module) -> list[StochasticDepth]:
    return [m for m in model.modules() if isinstance(m, StochasticDepth)]


def test_off_is_torchvisions_network() -> None:
    x = torch.randn(2, 3, 32, 32)
    model, plain = resnet(stochastic_depth=0.0).train(), reference().train()
    assert not layers(model)
    assert torch.equal(model(x), plain(x))  # train mode: batch statistics, no drop


@pytest.mark.parametrize(("arch", "blocks"), [("resnet18", 8), ("resnet50", 16)])
def test_drop_probabilities_rise_linearly_to_p_at_the_last_block(arch: str, blocks: int) -> None:
    model = resnet(arch, stochastic_depth=0.4)
    ps = [m.p for m in layers(model)]
    assert len(ps) == len(residual_blocks(model)) == blocks
    assert ps == pytest.approx([0.4 * (i + 1) / blocks for i in range(blocks)])
    assert ps == drop_probabilities(blocks, 0.4)
    steps = [b - a for a, b in zip(ps, ps[1:], strict=False)]
    assert steps == pytest.approx([0.4 / blocks] * (blocks - 1))  # linear: equal steps
    assert {m.mode for m in layers(model)} == {"row"}


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_evaluation_is_deterministic_and_the_undropped_network(arch: str) -> None:
    x = torch.randn(3, 3, 32, 32)
    model, plain = resnet(arch, stochastic_depth=0.5).eval(), reference(arch).eval()
    with torch.no_grad():
        first, second, undropped = model(x), model(x), plain(x)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, undropped)


def test_with_p_near_1_the_last_blocks_are_mostly_identity() -> None:
    model = resnet(stochastic_depth=0.95).train()
    blocks = residual_blocks(model)
    identity: dict[int, float] = {}  # block index -> fraction of samples the block passed through unchanged
    for index, block in enumerate(blocks):
        if block.downsample is None:  # a dropped block with an identity shortcut returns its input exactly
            block.register_forward_hook(
                lambda m, i, o, index=index: identity.__setitem__(
                    index, (i[0] == o).flatten(1).all(dim=1).float().mean().item()
                )
            )
    torch.manual_seed(1)
    with torch.no_grad():
        model(torch.randn(64, 3, 32, 32))
    ps = drop_probabilities(len(blocks), 0.95)
    assert sorted(identity) == [0, 1, 3, 5, 7]
    for index, fraction in identity.items():  # 64 samples: within ~3 standard deviations of p_l
        assert fraction == pytest.approx(ps[index], abs=0.2), (index, fraction, ps[index])
    assert identity[7] > 0.85 and identity[0] < 0.3  # the last block mostly skipped, the first mostly kept


def test_batch_mode_drops_the_whole_batch_together() -> None:
    model = resnet(stochastic_depth=0.5, stochastic_depth_mode="batch").train()
    block = model.layer4[1]
    outs = []
    block.register_forward_hook(lambda m, i, o: outs.append((i[0] == o).flatten(1).all(dim=1)))
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(8):
            model(torch.randn(6, 3, 32, 32))
    assert all(o.all() or not o.any() for o in outs)  # each batch: all dropped or none
    assert any(o.all() for o in outs) and any(not o.any() for o in outs)


def test_gradients_reach_every_layer() -> None:
    model = resnet(stochastic_depth=0.3).train()
    torch.manual_seed(0)
    loss = nn.functional.cross_entropy(model(torch.randn(16, 3, 32, 32)), torch.randint(0, 5, (16,)))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_stochastic_depth_with_freeze_and_pretrained_keys() -> None:
    model = resnet(stochastic_depth=0.2, freeze="layer1")
    assert not any(p.requires_grad for p in model.layer1.parameters())
    assert isinstance(model.layer1[0].bn2[0], FrozenBatchNorm2d)  # the wrapped BatchNorm, frozen in place
    assert "layer1.0.bn2.0.running_mean" in model.state_dict()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"arch": "small_cnn", "stochastic_depth": 0.2}, "ResNet family"),
        ({"arch": "mobilenet_v3_small", "stochastic_depth": 0.2}, "ResNet family"),
        ({"arch": "resnet18", "stochastic_depth": 1.0}, r"\[0, 1\)"),
        ({"arch": "resnet18", "stochastic_depth": -0.1}, r"\[0, 1\)"),
        ({"arch": "resnet18", "stochastic_depth": 0.0, "stochastic_depth_mode": "sample"}, "row .* batch"),
    ],
)
def test_bad_settings_say_what_to_do(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_classifier(num_classes=3, **options)
