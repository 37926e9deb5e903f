"""Pretrained weights from the local torch hub cache: the detection and segmentation models start from ImageNet
backbone weights as their reference recipes do (not on the built-in synthetic data), read from `TORCH_HOME`, and
a missing file stops the run with one line that says where to put it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

from cvtrain.models.build import build_model
from cvtrain.models.weights import hub_checkpoint_path, weights_replaced_by_checkpoint
from tests.conftest import FIXTURES, compose_config, run_cli

RECIPES_WITH_IMAGENET_BACKBONES = (
    "faster_rcnn",
    "mask_rcnn",
    "retinanet",
    "ssd",
    "fcn",
    "deeplabv3",
    "lraspp",
)
VOC = FIXTURES / "voc-sample" / "VOCdevkit"
LIGHT_FASTER_RCNN = ("model=faster_rcnn", "model.backbone=mobilenet_v3_large_320_fpn")


@pytest.mark.parametrize("model", RECIPES_WITH_IMAGENET_BACKBONES)
def test_reference_recipes_start_from_imagenet_backbones_but_not_on_the_shapes_data(model: str) -> None:
    data = "data=voc_seg" if model in ("fcn", "deeplabv3", "lraspp") else "data=voc"
    assert compose_config(f"model={model}", data, f"data.root={VOC}").model.pretrained_backbone is True
    assert compose_config(f"model={model}", "data=shapes").model.pretrained_backbone is False
    assert (
        compose_config(f"model={model}", "model.pretrained_backbone=true").model.pretrained_backbone is True
    )
    assert compose_config(f"model={model}", data, f"data.root={VOC}", "model.pretrained_backbone=false").model.pretrained_backbone is False  # fmt: skip


def test_the_backbone_holds_the_state_dict_saved_in_torch_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    imagenet = mobilenet_v3_large().state_dict()
    path = hub_checkpoint_path(MobileNet_V3_Large_Weights.IMAGENET1K_V1)
    assert path == tmp_path / "hub" / "checkpoints" / "mobilenet_v3_large-8738ca79.pth"
    path.parent.mkdir(parents=True)
    torch.save(imagenet, path)
    cfg = compose_config(*LIGHT_FASTER_RCNN, "data=voc", f"data.root={VOC}")
    body = build_model(cfg.model, num_classes=20).model.backbone.body  # torchvision's mobilenet `features`
    for key, value in body.state_dict().items():
        assert torch.equal(value, imagenet[f"features.{key}"]), key


def test_a_missing_backbone_file_is_one_line_naming_the_file_url_folder_and_the_way_out(
    tmp_path: Path,
) -> None:
    proc = run_cli(
        "fit", *LIGHT_FASTER_RCNN, "data=voc", f"data.root={VOC}", "data.years=[2012]", "data.val_years=[2012]",
        "data.val_split=trainval", "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, check=False, env={"TORCH_HOME": str(tmp_path / "torch")},
    )  # fmt: skip
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    out = proc.stdout + proc.stderr
    # before the data (the fixture has no ImageSets/Main/trainval.txt, which would be the error otherwise): the
    # recipe fit was about to train, then the one error line
    lines = out.splitlines()
    assert proc.returncode == 1 and "Traceback" not in out, out
    assert lines[0] == "recipe" and all(line[0] in "┏┃┡│└" for line in lines[1:-1]), out
    assert out.endswith(
        "ERROR    the pretrained weights mobilenet_v3_large-8738ca79.pth "
        "(MobileNet_V3_Large_Weights.IMAGENET1K_V1) are not in the torch hub cache and cvtrain downloads nothing "
        "at run time: download https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth to "
        f"{cache}/mobilenet_v3_large-8738ca79.pth (or set TORCH_HOME to a folder whose hub/checkpoints/ holds it), "
        "or train from random weights "
        "with model.pretrained_backbone=false (model.pretrained=false for a whole model's weights).\n"
    ), out
    assert not cache.exists()  # nothing was downloaded


def test_a_checkpoint_s_network_builds_without_the_imagenet_file_with_the_same_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval, predict and export load a checkpoint's weights over the network: the ImageNet file it started from is
    not needed, but the network must be the one pretrained weights give (frozen batch norm), key for key."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = hub_checkpoint_path(MobileNet_V3_Large_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(mobilenet_v3_large().state_dict(), path)
    cfg = compose_config(*LIGHT_FASTER_RCNN, "data=voc", f"data.root={VOC}")
    trained = build_model(cfg.model, num_classes=20)
    path.unlink()
    with weights_replaced_by_checkpoint():
        rebuilt = build_model(cfg.model, num_classes=20)
    assert not path.exists()
    assert rebuilt.state_dict().keys() == trained.state_dict().keys()
    frozen = [type(m).__name__ for m in rebuilt.modules() if "BatchNorm" in type(m).__name__]
    assert frozen and set(frozen) == {"FrozenBatchNorm2d"}
    rebuilt.load_state_dict(trained.state_dict())  # what restore's load_weights then does
