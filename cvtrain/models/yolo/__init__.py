"""Our own YOLO detectors: `YOLO` (model=yolo, modern, anchor-free) and `YOLOv1` (model=yolo_v1, the original grid
formulation). Each YAML's `_target_` names the class itself; its constructor checks every option.

Both follow the detection model contract of cvtrain's torchvision detector wrappers: `forward(images, targets)`
returns a dict of weighted losses in training mode and a list of {"boxes", "scores", "labels"} in eval mode.
"""

from __future__ import annotations

from cvtrain.models.yolo.backbone import YOLO_SIZES
from cvtrain.models.yolo.model import YOLO
from cvtrain.models.yolo.v1 import YOLOv1

__all__ = ["YOLO", "YOLO_SIZES", "YOLOv1"]
