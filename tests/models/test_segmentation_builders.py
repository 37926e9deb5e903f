from functools import partial

import pytest
import torch
from torchvision.models import segmentation as tvseg

from cvtrain.errors import ConfigError
from cvtrain.models.fcn8s import FCN8s
from cvtrain.models.segmentation import build_fcn8s, build_torchvision_segmenter, build_unet
from cvtrain.models.unet import UNet
from cvtrain.models.weights import hub_checkpoint_path

BUILDERS = {
    "fcn": partial(build_torchvision_segmenter, arch="fcn"),
    "deeplabv3": partial(build_torchvision_segmenter, arch="deeplabv3"),
    "lraspp": partial(build_torchvision_segmenter, arch="lraspp"),
    "fcn8s": build_fcn8s,
    "unet": build_unet,
}
SMALL = {
    "fcn": {"backbone": "resnet50", "aux_loss": True},
    "deeplabv3": {"backbone": "mobilenet_v3_large", "aux_loss": True},
    "lraspp": {},
    "fcn8s": {"width": 4, "fc_width": 8, "upsample": "bilinear"},
    "unet": {"base_width": 4, "depth": 2},
}


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("name", BUILDERS)
def test_every_model_maps_images_to_input_size_logits(name):
    model = BUILDERS[name](num_classes=4, **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 35, 43))
    expected_keys = {"out", "aux"} if SMALL[name].get("aux_loss") else {"out"}
    assert set(out) == expected_keys
    for logits in out.values():
        assert logits.shape == (1, 4, 35, 43)


def test_deeplabv3_without_aux_returns_only_out_and_trains():
    model = build_torchvision_segmenter(arch="deeplabv3", num_classes=3, backbone="mobilenet_v3_large")
    out = model(torch.randn(2, 3, 33, 33))
    assert set(out) == {"out"}
    torch.nn.functional.cross_entropy(out["out"], torch.randint(0, 3, (2, 33, 33))).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn", "deeplabv3"])
def test_resnet101_backbones_build(name):
    model = BUILDERS[name](num_classes=3, backbone="resnet101")
    assert len(model.backbone.layer3) == 23


def test_fcn8s_and_unet_options_reach_the_model():
    fcn8s = build_fcn8s(num_classes=3, upsample="max_unpool", width=8, fc_width=16)
    assert isinstance(fcn8s, FCN8s) and fcn8s.upsample_mode == "max_unpool"
    unet = build_unet(num_classes=3, encoder="resnet18", depth=3, base_width=8)
    assert isinstance(unet, UNet) and unet.depth == 3


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("fcn", {"backbone": "mobilenet_v3_large"}, "model.backbone"),
        ("lraspp", {"backbone": "resnet50"}, "model.backbone"),
        ("lraspp", {"aux_loss": True}, "aux_loss"),
        ("fcn8s", {"aux_loss": True}, "aux_loss"),
        ("fcn8s", {"pretrained": True}, "no pretrained weights"),
        ("unet", {"pretrained_backbone": True}, "model.encoder"),
        ("fcn8s", {"pretrained_backbone": True, "width": 8}, "model.width=64"),
    ],
)
def test_bad_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        BUILDERS[name](num_classes=3, **options)


@pytest.mark.parametrize(
    ("name", "options", "weights_file"),
    [
        ("lraspp", {"pretrained": True}, "lraspp_mobilenet_v3_large-d234d4ea.pth"),
        (
            "deeplabv3",
            {"backbone": "mobilenet_v3_large", "pretrained_backbone": True},
            "mobilenet_v3_large-8738ca79.pth",
        ),
        ("fcn8s", {"pretrained_backbone": True}, "vgg16_bn-6c64b313.pth"),  # batch_norm: true by default
        ("fcn8s", {"pretrained_backbone": True, "batch_norm": False}, "vgg16-397923af.pth"),
        ("unet", {"encoder": "resnet18", "pretrained_backbone": True}, "resnet18-f37072fd.pth"),
    ],
)
def test_missing_weights_name_the_path_to_put_them_at(empty_hub, name, options, weights_file):
    with pytest.raises(ConfigError) as error:
        BUILDERS[name](num_classes=3, **options)
    assert str(empty_hub / "checkpoints" / weights_file) in str(error.value)
    assert not (empty_hub / "checkpoints").exists()  # nothing was downloaded


def _save_as_hub_checkpoint(model: torch.nn.Module, weights) -> None:
    path = hub_checkpoint_path(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


def test_pretrained_lraspp_loads_local_weights_and_gets_a_new_head(empty_hub):
    torch.manual_seed(0)
    reference = tvseg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    _save_as_hub_checkpoint(reference, tvseg.LRASPP_MobileNet_V3_Large_Weights.DEFAULT)
    model = build_torchvision_segmenter(arch="lraspp", num_classes=3, pretrained=True)
    assert torch.equal(model.backbone["0"][0].weight, reference.backbone["0"][0].weight)
    assert torch.equal(model.classifier.cbr[0].weight, reference.classifier.cbr[0].weight)
    assert model.classifier.low_classifier.out_channels == 3
    assert model.classifier.high_classifier.out_channels == 3
    assert model.eval()(torch.randn(1, 3, 32, 32))["out"].shape == (1, 3, 32, 32)


@pytest.fixture(scope="module")
def deeplabv3_hub(tmp_path_factory):
    """A hub cache holding a (randomly initialised) stand-in for torchvision's DeepLabV3-MobileNetV3 weights."""
    hub = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    reference = tvseg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "get_dir", lambda: str(hub))
        _save_as_hub_checkpoint(reference, tvseg.DeepLabV3_MobileNet_V3_Large_Weights.DEFAULT)
    return hub, reference


@pytest.mark.parametrize("aux_loss", [True, False])
def test_pretrained_deeplabv3_keeps_aux_head_only_when_asked(deeplabv3_hub, monkeypatch, aux_loss):
    hub, reference = deeplabv3_hub
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    model = build_torchvision_segmenter(
        arch="deeplabv3", num_classes=5, backbone="mobilenet_v3_large", pretrained=True, aux_loss=aux_loss
    )
    assert torch.equal(model.classifier[0].project[0].weight, reference.classifier[0].project[0].weight)
    assert model.classifier[-1].out_channels == 5
    out = model.eval()(torch.randn(1, 3, 32, 32))
    assert set(out) == ({"out", "aux"} if aux_loss else {"out"})
    if aux_loss:
        assert out["aux"].shape == (1, 5, 32, 32)
        assert torch.equal(model.aux_classifier[0].weight, reference.aux_classifier[0].weight)
