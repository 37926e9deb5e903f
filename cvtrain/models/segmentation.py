"""Every segmentation model cvtrain trains: the builders `conf/model/*.yaml` name (their `_target_`).

| builder | options |
|---|---|
| build_torchvision_segmenter, arch=fcn | backbone (resnet50 / resnet101), aux_loss, pretrained, pretrained_backbone |
| the same, arch=deeplabv3 | backbone (resnet50 / resnet101 / mobilenet_v3_large), aux_loss, pretrained, ... |
| the same, arch=lraspp | backbone (mobilenet_v3_large), pretrained, pretrained_backbone |
| build_fcn8s | upsample, width, fc_width, fc_kernel, batch_norm, dropout, pretrained_backbone (VGG16) — see fcn8s.py |
| build_unet | upsample, depth, base_width, encoder, pretrained_backbone (ResNet encoder) — see unet.py |

Each takes `num_classes` (background included) and keyword options whose defaults are those of the model's schema
(`cvtrain/config/model.py`). Every model maps images [B,3,H,W] to {"out": logits [B,num_classes,H,W]} plus "aux"
(same shape) when aux_loss is on. `pretrained` (torchvision's COCO-with-VOC-labels weights; the classifier is
replaced when num_classes is not 21) and `pretrained_backbone` (ImageNet) read files only from the local torch hub
cache (`cvtrain.models.weights`); when a file is missing the ConfigError says where to put it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torchvision.models import (
    MobileNet_V3_Large_Weights,
    ResNet50_Weights,
    ResNet101_Weights,
    VGG16_BN_Weights,
    VGG16_Weights,
    WeightsEnum,
)
from torchvision.models import segmentation as tvseg

from cvtrain.errors import ConfigError
from cvtrain.models.fcn8s import FCN8s
from cvtrain.models.unet import UNet
from cvtrain.models.weights import (
    default_weights,
    local_weights_state,
    torchvision_weights_from_local_cache,
)

SegmenterEntry = tuple[Callable[..., nn.Module], type[WeightsEnum], WeightsEnum]
# arch -> backbone (default first) -> (torchvision builder, its weights enum, the ImageNet weights its backbone uses)
ARCHITECTURES: dict[str, dict[str, SegmenterEntry]] = {
    "fcn": {
        "resnet50": (tvseg.fcn_resnet50, tvseg.FCN_ResNet50_Weights, ResNet50_Weights.IMAGENET1K_V1),
        "resnet101": (tvseg.fcn_resnet101, tvseg.FCN_ResNet101_Weights, ResNet101_Weights.IMAGENET1K_V1),
    },
    "deeplabv3": {
        "resnet50": (
            tvseg.deeplabv3_resnet50,
            tvseg.DeepLabV3_ResNet50_Weights,
            ResNet50_Weights.IMAGENET1K_V1,
        ),
        "resnet101": (
            tvseg.deeplabv3_resnet101,
            tvseg.DeepLabV3_ResNet101_Weights,
            ResNet101_Weights.IMAGENET1K_V1,
        ),
        "mobilenet_v3_large": (
            tvseg.deeplabv3_mobilenet_v3_large,
            tvseg.DeepLabV3_MobileNet_V3_Large_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
    },
    "lraspp": {
        "mobilenet_v3_large": (
            tvseg.lraspp_mobilenet_v3_large,
            tvseg.LRASPP_MobileNet_V3_Large_Weights,
            MobileNet_V3_Large_Weights.IMAGENET1K_V1,
        ),
    },
}


def build_torchvision_segmenter(
    *,
    num_classes: int,
    arch: str,
    backbone: str | None = None,
    aux_loss: bool = False,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
) -> nn.Module:
    """torchvision's FCN, DeepLabV3 (atrous spatial pyramid pooling) or LR-ASPP (no auxiliary head) on `backbone`
    (None: the architecture's first)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"model.arch={arch!r} is not a torchvision segmenter; choose one of {[*ARCHITECTURES]}"
        )
    backbones = ARCHITECTURES[arch]
    backbone = backbone or next(iter(backbones))
    if backbone not in backbones:
        raise ConfigError(
            f"model.backbone={backbone!r} is not available for model={arch}; choose one of {[*backbones]}"
        )
    if arch == "lraspp" and aux_loss:
        raise ConfigError("model=lraspp has no auxiliary head; set model.aux_loss=false")
    builder, weights_enum, backbone_weights = backbones[backbone]
    weights = weights_enum.DEFAULT if pretrained else None
    kwargs: dict[str, Any] = {
        "weights": weights,
        "weights_backbone": backbone_weights if pretrained_backbone else None,
        # torchvision insists on the weights' own 21 classes (and aux head); the head is replaced below
        "num_classes": None if pretrained else num_classes,
    }
    if arch != "lraspp":
        kwargs["aux_loss"] = None if pretrained else aux_loss
    with torchvision_weights_from_local_cache():
        model = builder(**kwargs)
    if weights is not None:
        _replace_classifiers(model, num_classes=num_classes, keep_aux=aux_loss)
    return model


def _new_last_conv(old: nn.Conv2d, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(old.in_channels, out_channels, kernel_size=old.kernel_size, padding=old.padding)


def _replace_classifiers(model: nn.Module, *, num_classes: int, keep_aux: bool) -> None:
    """Give a pretrained torchvision model `num_classes` outputs; drop its aux head unless `keep_aux`."""
    if isinstance(model, tvseg.LRASPP):
        head = model.classifier
        if head.low_classifier.out_channels != num_classes:
            head.low_classifier = _new_last_conv(head.low_classifier, num_classes)
            head.high_classifier = _new_last_conv(head.high_classifier, num_classes)
        return
    if model.classifier[-1].out_channels != num_classes:
        model.classifier[-1] = _new_last_conv(model.classifier[-1], num_classes)
    if not keep_aux:
        model.aux_classifier = None  # the backbone still returns layer3; without the head it is ignored
    elif model.aux_classifier[-1].out_channels != num_classes:
        model.aux_classifier[-1] = _new_last_conv(model.aux_classifier[-1], num_classes)


def _no_pretrained_or_aux(name: str, pretrained: bool, aux_loss: bool) -> None:
    if pretrained:
        raise ConfigError(
            f"there are no pretrained weights for model={name}; set model.pretrained=false "
            "(model.pretrained_backbone=true loads ImageNet weights into its backbone)"
        )
    if aux_loss:
        raise ConfigError(f"model={name} has no auxiliary head; set model.aux_loss=false")


def build_fcn8s(
    *,
    num_classes: int,
    upsample: str = "transposed",
    width: int = 64,
    fc_width: int = 4096,
    fc_kernel: int = 7,
    batch_norm: bool = True,
    dropout: float = 0.5,
    aux_loss: bool = False,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
) -> nn.Module:
    """FCN-8s (cvtrain/models/fcn8s.py); batch_norm=false is the paper's plain VGG16."""
    _no_pretrained_or_aux("fcn8s", pretrained, aux_loss)
    if pretrained_backbone and (width, fc_width, fc_kernel) != (64, 4096, 7):
        raise ConfigError(
            "model.pretrained_backbone=true loads torchvision's VGG16, which needs model.width=64, "
            f"model.fc_width=4096 and model.fc_kernel=7 (got {width}, {fc_width}, {fc_kernel})"
        )
    # Read the weights before building: a missing file fails fast, before a 134M-parameter model exists.
    weights = VGG16_BN_Weights.IMAGENET1K_V1 if batch_norm else VGG16_Weights.IMAGENET1K_V1
    state = local_weights_state(weights) if pretrained_backbone else None
    model = FCN8s(
        num_classes=num_classes,
        upsample=upsample,
        width=width,
        fc_width=fc_width,
        fc_kernel=fc_kernel,
        batch_norm=batch_norm,
        dropout=dropout,
    )
    if state is not None:
        model.load_vgg16_state(state)
    return model


def build_unet(
    *,
    num_classes: int,
    upsample: str = "transposed",
    depth: int | None = None,
    base_width: int = 64,
    encoder: str | None = None,
    aux_loss: bool = False,
    pretrained: bool = False,
    pretrained_backbone: bool = False,
) -> nn.Module:
    """U-Net (cvtrain/models/unet.py), optionally on a torchvision ResNet encoder."""
    _no_pretrained_or_aux("unet", pretrained, aux_loss)
    if pretrained_backbone and encoder is None:
        raise ConfigError(
            "model.pretrained_backbone=true needs a ResNet encoder: set model.encoder=resnet18|34|50"
        )
    model = UNet(
        num_classes=num_classes,
        depth=depth,
        base_width=base_width,
        upsample=upsample,
        encoder=encoder,
    )
    if pretrained_backbone and encoder is not None:
        model.load_encoder_state(local_weights_state(default_weights(encoder)))
    return model
