"""FCN-8s (Long, Shelhamer & Darrell): a VGG16 classifier made fully convolutional, upsampled inside the net.

Encoder: the VGG16 conv stack (torchvision's `make_layers` with every width scaled by `width / 64`, so tests can
make it tiny and `width=64` has exactly torchvision's layout), then VGG's fully connected fc6/fc7 as convolutions
(fc6 a 7×7 conv over pool5, fc7 a 1×1 conv), which is what lets the net take any input size.

Decoder, chosen by `upsample`:
- `transposed`, `bilinear`, `nearest`: FCN-8s proper. Class scores at stride 32 are upsampled 2×, added to scores
  from pool4, upsampled 2×, added to scores from pool3, and upsampled 8× back to H×W.
- `max_unpool`, `bed_of_nails`: unpooling leaves zeros that only convolutions can fill, and max-unpooling needs the
  pooling indices of a feature map with matching channels, so these build a SegNet-style mirror of the encoder:
  each stage unpools 2× (with the encoder's pool indices for `max_unpool`) and then convolves; the pool4 and pool3
  features are added after the matching stages, the FCN-8s skips at the feature level.

Inputs of any size: padded at the bottom/right to a multiple of 32, logits cropped back to H×W.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers

from cvtrain.errors import ConfigError
from cvtrain.models.upsampling import UPSAMPLE_MODES, make_upsample

_STRIDE = 32  # five 2× max-pools
_UNPOOLING_MODES = ("max_unpool", "bed_of_nails")


def _conv_block(in_channels: int, out_channels: int, *, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FCN8s(nn.Module):
    def __init__(
        self,
        *,
        num_classes: int,
        upsample: str = "transposed",
        width: int = 64,
        fc_width: int = 4096,
        fc_kernel: int = 7,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(
                f"unknown model.upsample={upsample!r} for fcn8s; choose one of {UPSAMPLE_MODES}"
            )
        if fc_kernel % 2 != 1:
            raise ConfigError(f"model.fc_kernel must be odd so fc6 keeps pool5's size, got {fc_kernel}")
        self.upsample_mode = upsample
        self.num_classes = num_classes
        scaled = [v if v == "M" else max(1, int(v) * width // 64) for v in cfgs["D"]]
        self.features = make_layers(scaled, batch_norm=batch_norm)
        self._pool_positions = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        if upsample == "max_unpool":
            for i in self._pool_positions:
                self.features[i].return_indices = True
        pool_channels = [int(scaled[i - 1]) for i, v in enumerate(scaled) if v == "M"]  # channels at pool1..5
        self.fc6 = nn.Conv2d(pool_channels[4], fc_width, fc_kernel, padding=fc_kernel // 2)
        self.fc7 = nn.Conv2d(fc_width, fc_width, 1)
        self.drop = nn.Dropout2d(dropout)

        if upsample in _UNPOOLING_MODES:
            self.decoder = _UnpoolingDecoder(
                mode=upsample, fc_width=fc_width, pool_channels=pool_channels, batch_norm=batch_norm
            )
            self.classifier = nn.Conv2d(pool_channels[0], num_classes, 1)
        else:
            self.score_fr = nn.Conv2d(fc_width, num_classes, 1)
            self.score_pool4 = nn.Conv2d(pool_channels[3], num_classes, 1)
            self.score_pool3 = nn.Conv2d(pool_channels[2], num_classes, 1)
            self.upscore2 = make_upsample(upsample, num_classes, 2)
            self.upscore_pool4 = make_upsample(upsample, num_classes, 2)
            self.upscore8 = make_upsample(upsample, num_classes, 8)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % _STRIDE, 0, -height % _STRIDE))
        pools, indices = self._encode(x)
        h = self.drop(F.relu(self.fc6(pools[4]), inplace=True))
        h = self.drop(F.relu(self.fc7(h), inplace=True))
        if self.upsample_mode in _UNPOOLING_MODES:
            logits = self.classifier(self.decoder(h, pools, indices))
        else:
            h = self.upscore2(self.score_fr(h)) + self.score_pool4(pools[3])
            h = self.upscore_pool4(h) + self.score_pool3(pools[2])
            logits = self.upscore8(h)
        return {"out": logits[..., :height, :width]}

    def _encode(self, x: Tensor) -> tuple[list[Tensor], list[Tensor | None]]:
        """Run the VGG stack; return the output of each of the five pools and their argmax indices."""
        pools: list[Tensor] = []
        indices: list[Tensor | None] = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                out = layer(x)
                x, idx = out if layer.return_indices else (out, None)
                pools.append(x)
                indices.append(idx)
            else:
                x = layer(x)
        return pools, indices

    def load_vgg16_state(self, state: dict[str, Tensor]) -> None:
        """Load a torchvision VGG16 (or VGG16-BN) ImageNet state dict: the conv stack as is, and the classifier's
        fc6/fc7 Linear weights reshaped into the equivalent convolutions ("convolutionalization")."""
        features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(features)
            self.fc6.weight.data.copy_(state["classifier.0.weight"].reshape(self.fc6.weight.shape))
            self.fc6.bias.data.copy_(state["classifier.0.bias"])
            self.fc7.weight.data.copy_(state["classifier.3.weight"].reshape(self.fc7.weight.shape))
            self.fc7.bias.data.copy_(state["classifier.3.bias"])
        except (RuntimeError, KeyError) as e:
            raise ConfigError(
                "the VGG16 ImageNet weights fit only fcn8s with width=64, fc_width=4096, fc_kernel=7 and "
                f"batch_norm matching the weights file (vgg16 or vgg16_bn): {e}"
            ) from e


class _UnpoolingDecoder(nn.Module):
    """SegNet-style decoder: five (unpool 2× → conv) stages mirroring the encoder's pools, fc7 → pool1 width."""

    def __init__(self, *, mode: str, fc_width: int, pool_channels: list[int], batch_norm: bool) -> None:
        super().__init__()
        # Stage k (k = 4..0) unpools into the input of pool k+1, whose channels are pool_channels[k].
        self.project = nn.Conv2d(fc_width, pool_channels[4], 1)
        self.unpools = nn.ModuleList(make_upsample(mode, pool_channels[k], 2) for k in range(5))
        out_channels = [pool_channels[max(k - 1, 0)] for k in range(5)]
        self.convs = nn.ModuleList(
            _conv_block(pool_channels[k], out_channels[k], batch_norm=batch_norm) for k in range(5)
        )

    def forward(self, h: Tensor, pools: list[Tensor], indices: list[Tensor | None]) -> Tensor:
        h = self.project(h)
        for k in reversed(range(5)):
            h = self.convs[k](self.unpools[k](h, indices[k]))
            if k in (4, 3):  # now at the resolution of pool4 / pool3: the FCN-8s skips
                h = h + pools[k - 1]
        return h
