import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from cvtrain.errors import ConfigError
from cvtrain.models.unet import UNet

PLAIN = {"base_width": 4, "depth": 3}
RESNET = {"base_width": 8, "encoder": "resnet18"}


@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
@pytest.mark.parametrize("options", [PLAIN, RESNET], ids=["plain", "resnet18"])
@pytest.mark.parametrize("size", [(37, 29), (33, 64)])
def test_logits_are_exactly_input_size(upsample, options, size):
    model = UNet(num_classes=5, upsample=upsample, **options).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert set(out) == {"out"}
    assert out["out"].shape == (2, 5, *size)


@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
@pytest.mark.parametrize(
    "options",
    [
        PLAIN,
        {"base_width": 4, "depth": 1},
        {"base_width": 8, "encoder": "resnet18", "depth": 3},
        {"base_width": 8, "encoder": "resnet50", "depth": 2},
    ],
    ids=["plain", "plain-depth1", "resnet18-depth3", "resnet50-depth2"],
)
def test_every_parameter_gets_a_finite_gradient(upsample, options):
    # DDP refuses parameters without gradients, so a shallow ResNet encoder must not keep its unused stages.
    model = UNet(num_classes=3, upsample=upsample, **options)
    target = torch.randint(0, 3, (2, 19, 23))
    nn.functional.cross_entropy(model(torch.randn(2, 3, 19, 23))["out"], target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_plain_unet_widths_and_depth():
    model = UNet(num_classes=2, base_width=8, depth=3)
    assert model.encoder.channels == [8, 16, 32, 64]
    assert len(model.decoder) == 3
    # skips are concatenated: the top decoder step fuses 8 upsampled + 8 skip channels
    assert model.decoder[-1].fuse[0].in_channels == 16
    assert UNet(num_classes=2).depth == 4


def test_resnet_encoder_loads_torchvision_weights():
    reference = resnet18(weights=None)
    model = UNet(num_classes=2, encoder="resnet18", base_width=8, depth=4)
    model.load_encoder_state(reference.state_dict())  # includes fc.*, which the encoder has no use for
    assert torch.equal(model.encoder.resnet.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.encoder.resnet.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert not hasattr(model.encoder.resnet, "layer4")


def test_encoder_weights_that_do_not_fit_are_config_errors():
    with pytest.raises(ConfigError, match="ResNet encoder"):
        UNet(num_classes=2, **PLAIN).load_encoder_state(resnet18(weights=None).state_dict())
    with pytest.raises(ConfigError, match="ResNet weights"):
        UNet(num_classes=2, encoder="resnet50", depth=2).load_encoder_state(
            resnet18(weights=None).state_dict()
        )


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="model.upsample"):
        UNet(num_classes=2, upsample="nearest")
    with pytest.raises(ConfigError, match="model.encoder"):
        UNet(num_classes=2, encoder="vgg16")
    with pytest.raises(ConfigError, match="model.depth"):
        UNet(num_classes=2, encoder="resnet18", depth=6)
    with pytest.raises(ConfigError, match="model.depth"):
        UNet(num_classes=2, depth=0)
