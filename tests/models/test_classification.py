from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from cvtrain.errors import ConfigError
from cvtrain.models.classification import build_classifier, stages

ARCHS = ["small_cnn", "alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v3_small"]


@pytest.mark.parametrize("arch", ARCHS)
def test_every_classifier_builds_with_the_dataset_classes(arch: str) -> None:
    model = build_classifier(arch=arch, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)


def test_freeze_up_to_a_stage_freezes_below_and_trains_above() -> None:
    model = build_classifier(arch="resnet18", num_classes=4, freeze="layer2")
    assert not any(p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    assert isinstance(model.bn1, FrozenBatchNorm2d) and isinstance(model.layer2[0].bn1, FrozenBatchNorm2d)
    assert isinstance(model.layer3[0].bn1, nn.BatchNorm2d)
    model.train()
    frozen_stats = model.layer1[0].bn1.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(model.layer1[0].bn1.running_mean, frozen_stats)  # frozen statistics do not move


def test_freeze_names_the_valid_stages_when_wrong() -> None:
    with pytest.raises(ConfigError, match="layer4"):
        build_classifier(arch="resnet18", num_classes=2, freeze="block9")
    assert [name for name, _ in stages(build_classifier(arch="small_cnn", num_classes=2))][:2] == [
        "layer1",
        "layer2",
    ]


def test_dropout_where_the_architecture_has_it() -> None:
    model = build_classifier(arch="alexnet", num_classes=2, dropout=0.3)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.3}
    with pytest.raises(ConfigError, match="no dropout"):
        build_classifier(arch="resnet18", num_classes=2, dropout=0.3)


def test_missing_pretrained_weights_say_where_to_put_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ConfigError) as e:
        build_classifier(arch="resnet18", num_classes=2, pretrained=True)
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in str(e.value)
    assert "download.pytorch.org" in str(e.value)


def test_present_pretrained_weights_load_and_the_head_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    reference = build_classifier(arch="resnet18", num_classes=1000)
    (tmp_path / "checkpoints").mkdir()
    torch.save(reference.state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    model = build_classifier(arch="resnet18", num_classes=7, pretrained=True)
    assert model.fc.out_features == 7
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
