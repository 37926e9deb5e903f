"""Our own YOLO detectors: `yolo` (modern, anchor-free) and `yolo_v1` (the original grid formulation).

Both follow the detection model contract of cvtrain's torchvision detector wrappers: `forward(images, targets)`
returns a dict of weighted losses in training mode and a list of {"boxes", "scores", "labels"} in eval mode.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.backbone import YOLO_SIZES
from cvtrain.models.yolo.model import YOLO
from cvtrain.models.yolo.v1 import YOLOv1

YOLO_MODELS: dict[str, type[nn.Module]] = {"yolo": YOLO, "yolo_v1": YOLOv1}

__all__ = ["YOLO", "YOLO_MODELS", "YOLO_SIZES", "YOLOv1", "build_yolo"]


def build_yolo(*, name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build `yolo` or `yolo_v1` with the constructor's keyword options (a typo fails with the valid keys)."""
    if name not in YOLO_MODELS:
        raise ConfigError(f"model={name!r} is not a YOLO model; choose one of {', '.join(YOLO_MODELS)}.")
    model_class = YOLO_MODELS[name]
    accepted = [
        p for p in inspect.signature(model_class.__init__).parameters if p not in ("self", "num_classes")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option {', '.join(f'model.{k}' for k in unknown)}; "
            f"its options are: {', '.join(accepted)}."
        )
    return model_class(num_classes=num_classes, **options)
