"""U-Net (Ronneberger et al.): a contracting path, an expanding path, skips joined by concatenation.

Plain U-Net: `depth` down-steps (2×2 max-pool then two 3×3 convs), widths `base_width * 2**level`.
With `encoder="resnet18"|"resnet34"|"resnet50"` the contracting path is a torchvision ResNet instead (stem at
stride 2, layer1..layer4 at strides 4..32; `depth` picks how many of those five stages are used) and the
decoder widths are `base_width * 2**level / 4`, the usual 16-32-64-128-256 for base_width 64.

Each decoder step: 1×1 conv to the level's width (cheap, at low resolution), 2× upsampling (`transposed`:
learnable, bilinear-initialised; `bilinear`: fixed), concatenation with the encoder's features at that
resolution, two 3×3 convs. Convs are padded, so inputs of any size work: padded at the bottom/right to a
multiple of 2**depth, logits cropped back to H×W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18, resnet34, resnet50

from cvtrain.errors import ConfigError
from cvtrain.models.upsampling import make_upsample

RESNET_ENCODERS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
_UPSAMPLE_MODES = ("transposed", "bilinear")


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _PlainEncoder(nn.Module):
    """Features at strides 1, 2, ..., 2**depth with widths base_width * 2**level."""

    def __init__(self, *, in_channels: int, depth: int, base_width: int) -> None:
        super().__init__()
        self.channels = [base_width * 2**level for level in range(depth + 1)]
        self.stem = double_conv(in_channels, self.channels[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), double_conv(self.channels[level - 1], self.channels[level]))
            for level in range(1, depth + 1)
        )

    def forward(self, x: Tensor) -> list[Tensor | None]:
        features: list[Tensor | None] = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features


class _ResNetEncoder(nn.Module):
    """A torchvision ResNet's stages as features at strides 2, 4, ..., 2**depth (none at stride 1)."""

    def __init__(self, *, name: str, depth: int) -> None:
        super().__init__()
        self.resnet = RESNET_ENCODERS[name](weights=None)
        # The classifier and any stage deeper than `depth` would be parameters without gradients (DDP rejects
        # those), so they go.
        del self.resnet.fc, self.resnet.avgpool
        for name_ in ("layer1", "layer2", "layer3", "layer4")[max(depth - 1, 0) :]:
            delattr(self.resnet, name_)
        expansion = 4 if name == "resnet50" else 1  # Bottleneck vs BasicBlock output widths
        widths = [64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        self.depth = depth
        self.channels = [0, *widths[:depth]]  # 0: no encoder features at stride 1

    def forward(self, x: Tensor) -> list[Tensor | None]:
        r = self.resnet
        x = r.relu(r.bn1(r.conv1(x)))
        features: list[Tensor | None] = [None, x]
        if self.depth >= 2:
            x = r.layer1(r.maxpool(x))
            features.append(x)
        for name in ("layer2", "layer3", "layer4")[: max(self.depth - 2, 0)]:
            x = getattr(r, name)(x)
            features.append(x)
        return features

    def load_torchvision_state(self, state: dict[str, Tensor]) -> None:
        own = self.resnet.state_dict()
        missing = [key for key in own if key not in state]
        if missing:
            raise ConfigError(
                f"the ResNet weights file lacks {len(missing)} encoder tensors, e.g. {missing[:3]}"
            )
        try:
            self.resnet.load_state_dict({key: state[key] for key in own})
        except RuntimeError as e:
            raise ConfigError(f"the ResNet weights do not fit this encoder: {e}") from e


class _DecoderStep(nn.Module):
    def __init__(self, *, in_channels: int, skip_channels: int, out_channels: int, upsample: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, 1)
        self.up = make_upsample(upsample, out_channels, 2)
        self.fuse = double_conv(out_channels + skip_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = self.up(self.reduce(x))
        return self.fuse(x if skip is None else torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 3,
        depth: int | None = None,
        base_width: int = 64,
        upsample: str = "transposed",
        encoder: str | None = None,
    ) -> None:
        super().__init__()
        if upsample not in _UPSAMPLE_MODES:
            raise ConfigError(
                f"unknown model.upsample={upsample!r} for unet; choose one of {_UPSAMPLE_MODES}"
            )
        if encoder is None:
            depth = 4 if depth is None else depth
            if depth < 1:
                raise ConfigError(f"model.depth must be at least 1 for unet, got {depth}")
            self.encoder: nn.Module = _PlainEncoder(
                in_channels=in_channels, depth=depth, base_width=base_width
            )
            decoder_widths = self.encoder.channels
        else:
            if encoder not in RESNET_ENCODERS:
                raise ConfigError(
                    f"unknown model.encoder={encoder!r} for unet; choose one of {[*RESNET_ENCODERS]} or null"
                )
            if in_channels != 3:
                raise ConfigError(f"a ResNet encoder takes 3-channel images; got in_channels={in_channels}")
            depth = 5 if depth is None else depth
            if not 1 <= depth <= 5:
                raise ConfigError(
                    f"model.depth must be 1..5 with a ResNet encoder (its 5 stages), got {depth}"
                )
            self.encoder = _ResNetEncoder(name=encoder, depth=depth)
            decoder_widths = [max(1, base_width * 2**level // 4) for level in range(depth + 1)]
        self.depth = depth
        skip_channels: list[int] = self.encoder.channels
        # The deepest level's features enter the decoder as they are; each step goes one level up.
        in_widths = [skip_channels[depth], *decoder_widths[depth - 1 : 0 : -1]]
        self.decoder = nn.ModuleList(
            _DecoderStep(
                in_channels=in_width,
                skip_channels=skip_channels[level],
                out_channels=decoder_widths[level],
                upsample=upsample,
            )
            for in_width, level in zip(in_widths, range(depth - 1, -1, -1), strict=True)
        )
        self.classifier = nn.Conv2d(decoder_widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(x, (0, -width % multiple, 0, -height % multiple))
        features = self.encoder(x)
        h = features[-1]
        for step, level in zip(self.decoder, range(self.depth - 1, -1, -1), strict=True):
            h = step(h, features[level])
        return {"out": self.classifier(h)[..., :height, :width]}

    def load_encoder_state(self, state: dict[str, Tensor]) -> None:
        """Load a torchvision ResNet ImageNet state dict into the encoder (its classifier is not used)."""
        if not isinstance(self.encoder, _ResNetEncoder):
            raise ConfigError(
                "pretrained_backbone needs a ResNet encoder (model.encoder=resnet18|34|50) for unet"
            )
        self.encoder.load_torchvision_state(state)
