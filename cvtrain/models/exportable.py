"""Each trained model as a module with one image-batch input and plain tensor outputs, as deployment formats
(ONNX, TorchScript) need, and what those outputs mean (`cvtrain export` writes it into export.json).

| model | exported input | exported outputs |
|---|---|---|
| classifiers | [batch, 3, S, S] | logits [batch, classes] |
| segmenters | [batch, 3, height, width], any size | logits [batch, classes, height, width] ("out"; "aux" dropped) |
| yolo | [batch, 3, height, width], multiples of 32 | decoded boxes and class probabilities of every anchor |
| yolo_v1 | [batch, 3, image_size, image_size] | decoded boxes (0..1) and class scores of every grid box |

The detectors stop before NMS: score thresholds and NMS stay with the runtime that consumes the outputs (ONNX
has NonMaxSuppression, TorchScript has torchvision.ops.batched_nms), with the thresholds given in `postprocess`.
torchvision's detectors (Faster R-CNN, SSD, RetinaNet) are refused. Tried with Faster R-CNN (MobileNetV3-320):
torch.export (the default ONNX exporter) cannot capture its data-dependent output sizes; the TorchScript-based
exporter (`dynamo=False`, opset 17) writes a file that onnxruntime runs, and the parity check rejects it: on 64 px
images, with the class and objectness heads re-initialised so that no scores tie, its scores and labels equal
PyTorch's in order (1e-7) but its boxes differ by 55 to 76 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.coder import decode_boxes
from cvtrain.models.yolo.model import YOLO
from cvtrain.models.yolo.v1 import YOLOv1
from cvtrain.models.yolo.v1_loss import decode_predictions

SUPPORTED = (
    "classifiers (every classification model=), segmenters (every segmentation model=), yolo and yolo_v1"
)


@dataclass
class Exportable:
    """`module(images)` returns a tuple of tensors named `output_names`, each described in `outputs`."""

    module: nn.Module
    output_names: list[str]
    outputs: list[dict[str, Any]]
    dynamic_size: bool  # height and width may vary (otherwise fixed to the example's size)
    size_multiple: int = 1  # height and width must be multiples of this
    postprocess: dict[str, Any] = field(default_factory=dict)


class Logits(nn.Module):
    """A classifier's logits, or a segmenter's "out" logits (its training-only "aux" head left out)."""

    def __init__(self, model: nn.Module, key: str | None) -> None:
        super().__init__()
        self.model, self.key = model, key

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        out = self.model(images)
        return (out if self.key is None else out[self.key],)


class YOLOCandidates(nn.Module):
    """model=yolo up to NMS: every anchor's XYXY box in input pixels and its sigmoid class probabilities."""

    def __init__(self, model: YOLO) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        cls_logits, box_outputs, points, strides = m.flatten_outputs(m.raw_outputs(images))
        return decode_boxes(box_outputs, points, strides, m.reg_max), cls_logits.sigmoid()


class YOLOv1Candidates(nn.Module):
    """model=yolo_v1 up to NMS: every grid box as XYXY fractions of the image and its class-specific scores."""

    def __init__(self, model: YOLOv1) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        boxes, scores = decode_predictions(m.grid_outputs(images), boxes_per_cell=m.boxes_per_cell)
        # decode_predictions flattens every leading dimension; the batch comes first, so a view restores it.
        return boxes.view(images.shape[0], -1, 4), scores.view(images.shape[0], -1, m.num_classes)


def _nms(model: YOLO | YOLOv1, boxes_in: str) -> dict[str, Any]:
    return {
        "decoded": True,
        "nms_applied": False,
        "boxes": boxes_in,
        "conf_threshold": model.conf_threshold,
        "iou_threshold": model.iou_threshold,
        "max_det": model.max_det,
        "how": "keep every (box, class) pair whose score exceeds conf_threshold, clip boxes to the image, run NMS "
        "per class at iou_threshold (torchvision.ops.batched_nms), keep the max_det best: cvtrain's own "
        "post-processing (cvtrain/models/yolo/nms.py)",
    }


def exportable(model: nn.Module, *, task: str, name: str, num_classes: int) -> Exportable:
    """The export form of `model` (in eval mode), or a ConfigError naming what is supported."""
    exp = _exportable(model, task=task, name=name)
    exp.module.eval()
    for output in exp.outputs:  # the class count is known; batch, size and anchors follow the input
        output["shape"] = [num_classes if d == "classes" else d for d in output["shape"]]
    return exp


def _exportable(model: nn.Module, *, task: str, name: str) -> Exportable:
    if isinstance(model, YOLO):
        return Exportable(
            module=YOLOCandidates(model),
            output_names=["boxes", "scores"],
            outputs=[
                _described("boxes", ["batch", "anchors", 4], "XYXY box of every anchor, in input pixels"),
                _described("scores", ["batch", "anchors", "classes"], "sigmoid probability of each class"),
            ],
            dynamic_size=True,
            size_multiple=max(model.strides),
            postprocess=_nms(model, "input pixels"),
        )
    if isinstance(model, YOLOv1):
        return Exportable(
            module=YOLOv1Candidates(model),
            output_names=["boxes", "scores"],
            outputs=[
                _described(
                    "boxes",
                    ["batch", "grid_boxes", 4],
                    "XYXY box of every grid predictor as fractions 0..1 of the image: multiply by the original "
                    "width and height (the image was stretched)",
                ),
                _described(
                    "scores", ["batch", "grid_boxes", "classes"], "confidence x P(class | object), per class"
                ),
            ],
            dynamic_size=False,
            postprocess=_nms(model, "fractions of the image"),
        )
    if task == "classification":
        return Exportable(
            module=Logits(model, None),
            output_names=["logits"],
            outputs=[_described("logits", ["batch", "classes"], "class logits: softmax gives probabilities")],
            dynamic_size=False,
        )
    if task == "segmentation":
        return Exportable(
            module=Logits(model, "out"),
            output_names=["logits"],
            outputs=[
                _described(
                    "logits",
                    ["batch", "classes", "height", "width"],
                    "per-pixel class logits at the input size: argmax over classes gives the label map "
                    "(class 0 is the background)",
                )
            ],
            dynamic_size=True,
        )
    raise ConfigError(
        f"cvtrain export does not support model={name} ({task}); it exports {SUPPORTED}, each as "
        "format=onnx or format=torchscript. torchvision's detectors (faster_rcnn, ssd, retinanet) are not "
        "exported (see cvtrain/models/exportable.py): use cvtrain eval / predict for them."
    )


def _described(name: str, shape: list[Any], meaning: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "meaning": meaning}
