"""Schemas of the `model` group. `_target_` (set in each YAML) names the model's builder; it is called with
`num_classes` and every field of the schema as keyword arguments, except `_target_`, `name`, `task` and the loss
options the task reads (`TASK_OPTIONS`). The schema is the one home of every default."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from omegaconf import MISSING

from cvtrain.config.ranges import bounded
from cvtrain.config.registry import schema


@dataclass
class ModelConfig:
    _target_: str = MISSING  # the builder: (num_classes=, **options) -> nn.Module
    name: str = MISSING
    task: str = MISSING  # classification | detection | segmentation: selects the task and the data form

    TASK_OPTIONS: ClassVar[tuple[str, ...]] = ()  # read by the task, not passed to the builder

    def builder_options(self) -> dict[str, Any]:
        skip = {"_target_", "name", "task", *self.TASK_OPTIONS}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


@schema("model", "classifier")
@dataclass
class ClassifierConfig(ModelConfig):
    task: str = "classification"
    arch: str = MISSING  # a torchvision classification builder name, or small_cnn
    pretrained: bool = False  # ImageNet weights (from the local torch hub cache)
    freeze: str | None = None  # freeze every stage up to and including this one (transfer learning)
    # None keeps the architecture's default; only for models with dropout
    dropout: float | None = bounded(None, ge=0, lt=1)
    # ResNet family: drop residual branches in training, with probability rising linearly with depth to this value
    # at the last block (0 = off); per sample (row) or per batch. Evaluation runs the whole network.
    stochastic_depth: float = bounded(0.0, ge=0, lt=1)
    stochastic_depth_mode: str = "row"  # row | batch
    # training loss: cross-entropy against (1 - eps) one-hot + eps / classes
    label_smoothing: float = bounded(0.0, ge=0, lt=1)

    TASK_OPTIONS: ClassVar[tuple[str, ...]] = ("label_smoothing",)


@dataclass
class DetectionModelConfig(ModelConfig):
    """torchvision detectors (cvtrain/models/detection.py). Size and threshold options left at None take
    torchvision's default for the chosen backbone (the 320 MobileNet variant has its own)."""

    task: str = "detection"
    arch: str = MISSING  # faster_rcnn | mask_rcnn | ssd | retinanet (cvtrain/models/detection.py)
    backbone: str | None = None  # None: the model's first (default) backbone
    pretrained: bool = False  # COCO weights (class head replaced for the dataset's classes)
    pretrained_backbone: bool = False  # ImageNet weights for the backbone (from the local torch hub cache)
    # only with pretrained weights; None: torchvision's default
    trainable_backbone_layers: int | None = bounded(None, ge=0)


@schema("model", "faster_rcnn")
@dataclass
class FasterRCNNConfig(DetectionModelConfig):
    # None keeps torchvision's value for the backbone, listed here for resnet50_fpn; mobilenet_v3_large_320_fpn
    # has min_size 320, max_size 640, rpn_pre/post_nms_top_n_test 150, rpn_score_thresh 0.05.
    # The resize inside the model: shorter side to min_size, longer side at most max_size (800 / 1333).
    min_size: int | None = bounded(None, ge=1)
    max_size: int | None = bounded(None, ge=1)
    # Region proposal network. Defaults: 2000, 1000, 2000, 1000, 0.7, 0.7, 0.3, 256, 0.5, 0.0.
    rpn_pre_nms_top_n_train: int | None = bounded(None, ge=1)
    rpn_pre_nms_top_n_test: int | None = bounded(None, ge=1)
    rpn_post_nms_top_n_train: int | None = bounded(None, ge=1)
    rpn_post_nms_top_n_test: int | None = bounded(None, ge=1)
    rpn_nms_thresh: float | None = bounded(None, ge=0, le=1)
    rpn_fg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    rpn_bg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    rpn_batch_size_per_image: int | None = bounded(None, ge=1)
    rpn_positive_fraction: float | None = bounded(None, ge=0, le=1)
    rpn_score_thresh: float | None = bounded(None, ge=0, le=1)
    # RoI heads. Defaults: 0.05, 0.5, 100, 0.5, 0.5, 512, 0.25.
    box_score_thresh: float | None = bounded(None, ge=0, le=1)
    box_nms_thresh: float | None = bounded(None, ge=0, le=1)
    box_detections_per_img: int | None = bounded(None, ge=1)
    box_fg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    box_bg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    box_batch_size_per_image: int | None = bounded(None, ge=1)
    box_positive_fraction: float | None = bounded(None, ge=0, le=1)


@schema("model", "mask_rcnn")
@dataclass
class MaskRCNNConfig(FasterRCNNConfig):
    """Faster R-CNN's options; the targets carry instance masks and COCO mask AP (`segm_map`, ...) is added."""

    task: str = "instance_segmentation"  # the detection task with masks (cvtrain/tasks/detection.py)


@schema("model", "ssd")
@dataclass
class SSDConfig(DetectionModelConfig):
    # Defaults (ssd300_vgg16 / ssdlite320): score 0.01 / 0.001, nms 0.45 / 0.55, detections 200 / 300,
    # iou 0.5, topk 400 / 300, positive fraction 0.25.
    score_thresh: float | None = bounded(None, ge=0, le=1)
    nms_thresh: float | None = bounded(None, ge=0, le=1)
    detections_per_img: int | None = bounded(None, ge=1)
    iou_thresh: float | None = bounded(None, ge=0, le=1)
    topk_candidates: int | None = bounded(None, ge=1)
    positive_fraction: float | None = bounded(None, ge=0, le=1)


@schema("model", "retinanet")
@dataclass
class RetinaNetConfig(DetectionModelConfig):
    min_size: int | None = bounded(None, ge=1)  # defaults: 800, 1333, 0.05, 0.5, 300, 0.5, 0.4, 1000
    max_size: int | None = bounded(None, ge=1)
    score_thresh: float | None = bounded(None, ge=0, le=1)
    nms_thresh: float | None = bounded(None, ge=0, le=1)
    detections_per_img: int | None = bounded(None, ge=1)
    fg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    bg_iou_thresh: float | None = bounded(None, ge=0, le=1)
    topk_candidates: int | None = bounded(None, ge=1)


@schema("model", "yolo")
@dataclass
class YOLOConfig(ModelConfig):
    """`model=yolo` (cvtrain/models/yolo/model.py): every field but _target_/name/task is a constructor option.
    There are no pretrained weights for it."""

    task: str = "detection"
    size: str = "n"  # n | s | m | l: width/depth multipliers
    # bins of the distribution focal loss per box side (1: plain distances, no DFL)
    reg_max: int = bounded(16, ge=1, le=64)
    cls_loss: str = "bce"  # bce | varifocal
    box_loss: str = "ciou"  # ciou | giou
    cls_weight: float = bounded(0.5, ge=0)
    box_weight: float = bounded(7.5, ge=0)
    dfl_weight: float = bounded(1.5, ge=0)
    topk: int = bounded(10, ge=1)  # task-aligned assigner: candidate anchors per object
    alpha: float = bounded(0.5, ge=0)  # alignment = score^alpha * IoU^beta
    beta: float = bounded(6.0, ge=0)
    prior_prob: float = bounded(0.01, gt=0, lt=1)  # initial class probability (bias of the class logits)
    # inference: minimum class score kept before NMS (low: best for mAP)
    conf_threshold: float = bounded(0.001, ge=0, le=1)
    iou_threshold: float = bounded(0.7, ge=0, le=1)  # inference: class-wise NMS IoU
    max_det: int = bounded(300, ge=1)  # inference: detections kept per image


@schema("model", "yolo_v1")
@dataclass
class YOLOv1Config(ModelConfig):
    """`model=yolo_v1` (cvtrain/models/yolo/v1.py): every field but _target_/name/task is a constructor option."""

    task: str = "detection"
    pretrained: bool = False  # ImageNet weights for the resnet18 trunk (backbone=resnet18 only)
    grid_size: int = bounded(7, ge=1)  # S
    boxes_per_cell: int = bounded(2, ge=1)  # B
    image_size: int = bounded(448, ge=1)  # the model stretches every image to image_size x image_size
    backbone: str = "darknet"  # darknet | resnet18 (resnet18 accepts pretrained=true)
    width: int = bounded(32, ge=1)  # darknet trunk's first width
    head: str = "conv"  # conv (per-cell 3x3 convs) | fc (the paper's fully connected head)
    head_channels: int = bounded(256, ge=1)
    hidden: int = bounded(1024, ge=1)  # fc head only
    dropout: float = bounded(0.5, ge=0, lt=1)  # fc head only
    lambda_coord: float = bounded(5.0, ge=0)
    lambda_noobj: float = bounded(0.5, ge=0)
    conf_threshold: float = bounded(0.001, ge=0, le=1)
    iou_threshold: float = bounded(0.5, ge=0, le=1)
    max_det: int = bounded(100, ge=1)


@dataclass
class SegmentationModelConfig(ModelConfig):
    """Segmentation models (cvtrain/models/segmentation.py). `aux_weight` and `class_weights` are loss
    options, read by the task; every other field is a builder option."""

    task: str = "segmentation"
    aux_loss: bool = False  # fcn / deeplabv3: an auxiliary FCN head on layer3, weighted by aux_weight
    aux_weight: float = bounded(0.5, ge=0)  # loss = ce(out) + aux_weight * ce(aux)
    # cross-entropy weight per class, background first; None: equal
    class_weights: list[float] | None = bounded(None, ge=0)
    # torchvision's COCO weights with VOC's 21 classes (fcn, deeplabv3, lraspp; classifier replaced for other counts)
    pretrained: bool = False
    # ImageNet weights for the backbone (from the local torch hub cache): fcn8s's VGG16(-BN), convolutionalised into
    # fc6/fc7; unet's ResNet encoder
    pretrained_backbone: bool = False

    TASK_OPTIONS: ClassVar[tuple[str, ...]] = ("aux_weight", "class_weights")


@schema("model", "torchvision_segmentation")
@dataclass
class TorchvisionSegmentationConfig(SegmentationModelConfig):
    arch: str = MISSING  # fcn | deeplabv3 | lraspp (cvtrain/models/segmentation.py)
    backbone: str = MISSING  # resnet50 | resnet101 | mobilenet_v3_large (deeplabv3, lraspp)


@schema("model", "fcn8s")
@dataclass
class FCN8sConfig(SegmentationModelConfig):
    # transposed (learnable, bilinear init) | bilinear | nearest | bed_of_nails | max_unpool (SegNet-style decoder)
    upsample: str = "transposed"
    width: int = bounded(64, ge=1)  # VGG16's first conv width (64 = VGG16); every stage scales with it
    fc_width: int = bounded(4096, ge=1)  # fc6 / fc7 as convolutions
    fc_kernel: int = bounded(7, ge=1)  # fc6's kernel (VGG16's 7x7 pool5 grid)
    # VGG16-BN: trains from scratch (pretrained_backbone then loads vgg16_bn); false = the paper's plain VGG16
    # (needs pretrained_backbone)
    batch_norm: bool = True
    dropout: float = bounded(0.5, ge=0, lt=1)


@schema("model", "unet")
@dataclass
class UNetConfig(SegmentationModelConfig):
    upsample: str = "transposed"  # transposed (learnable, bilinear init) | bilinear
    depth: int | None = bounded(None, ge=1)  # down-steps; None: 4 (plain encoder) or 5 (ResNet encoder)
    base_width: int = bounded(64, ge=1)  # widths base_width * 2^level
    encoder: str | None = None  # None: U-Net's own encoder; resnet18 | resnet34 | resnet50 (torchvision's)
