"""A small VGG-style classifier for small images (the default run on `data=shapes` trains it on a CPU).

The AlexNet ingredients at a size a laptop trains in a minute: stacked 3x3 convolutions with ReLU (plus batch
norm), max pooling between stages, global average pooling, dropout before the linear classifier.
"""

from __future__ import annotations

from torch import nn


def _stage(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Four conv stages of widths (w, 2w, 4w, 4w), the first three followed by 2x2 max pooling."""

    def __init__(self, *, num_classes: int, width: int = 32, dropout: float = 0.2):
        super().__init__()
        self.layer1 = _stage(3, width, pool=True)
        self.layer2 = _stage(width, 2 * width, pool=True)
        self.layer3 = _stage(2 * width, 4 * width, pool=True)
        self.layer4 = _stage(4 * width, 4 * width, pool=False)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.layer4(self.layer3(self.layer2(self.layer1(x))))))
