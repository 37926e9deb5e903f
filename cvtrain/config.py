"""Typed schemas for every config group, stored in Hydra's ConfigStore.

Each YAML option in `conf/<group>/` starts its defaults list with `/schema/<group>/<schema>@_here_`, so a
misspelled key or a value of the wrong type fails during composition, before any work starts. Group-specific
schemas (one per family of options) live next to the shared ones here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

SHAPES_CLASSIFICATION_SIZE = 32  # data=shapes, classification form: one shape per image, this many pixels


class OnBadImage(Enum):
    error = "error"  # stop the run, naming the file
    skip = "skip"  # skip it, count it, list it in bad_images.txt in the run directory


class ShapesLayout(Enum):
    voc = "voc"  # VOC2007 layout: VOC AP (difficult objects ignored) and COCO AP; monitor voc_map
    coco = "coco"  # COCO layout: COCO AP with crowd regions and non-contiguous category ids; monitor map


class COCOSegClasses(Enum):
    voc = "voc"  # the 20 Pascal VOC categories (by COCO name, VOC's labels); every other object is background
    all = "all"  # every category of the annotation file (80 for COCO 2017) plus background


# ---------------------------------------------------------------- data
@dataclass
class DataConfig:
    format: str = MISSING
    batch_size: int = 32  # per process: a DDP run's global batch is batch_size x world size
    eval_batch_size: int | None = None  # defaults to batch_size
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    on_bad_image: OnBadImage = OnBadImage.error
    image_size: int = 224  # the size the data is meant to be seen at; aug.image_size follows it by default


@dataclass
class ImageFolderDataConfig(DataConfig):
    format: str = "imagefolder"
    root: str = MISSING
    train_dir: str = "train"
    val_dir: str = "val"
    synset_mapping: str | None = None  # a file of "<folder> <human readable name>" lines, relative to root


@dataclass
class ShapesDataConfig(DataConfig):
    format: str = "shapes"
    cache_dir: str = "~/.cache/cvtrain/shapes"
    seed: int = 0
    # The size the network sees (aug.image_size follows it): 32 px single shapes for a classifier, the whole scene
    # (scene_size) for a detection or segmentation model, so crops and letterboxes never cut a scene down.
    image_size: int = "${cvtrain.shapes_image_size:${model.task},${.scene_size}}"  # type: ignore[assignment]
    train_per_class: int = 400  # classification form
    val_per_class: int = 40
    scene_size: int = 128  # detection / segmentation forms: side of each multi-object scene, in pixels
    train_images: int = 512  # detection / segmentation forms: number of scenes per split
    val_images: int = 128
    layout: ShapesLayout = ShapesLayout.voc  # which copy the detection form reads


@dataclass
class SyntheticDataConfig(DataConfig):
    format: str = "synthetic"
    num_classes: int = 10
    length: int = 512
    num_workers: int = 0  # tensors are already in memory


@dataclass
class VOCDataConfig(DataConfig):
    format: str = "voc"
    root: str = MISSING  # a VOCdevkit folder holding VOC2007/ and/or VOC2012/
    years: list[int] = field(default_factory=lambda: [2007, 2012])  # the years read for training
    train_split: str = "trainval"  # ImageSets/Main/<split>.txt of every year in `years`
    val_years: list[int] | None = field(default_factory=lambda: [2007])  # None: the same as `years`
    val_split: str = "test"
    use_difficult: bool = False  # train on `difficult` objects too (evaluation always ignores them)
    aspect_ratio_grouping: bool = True  # batches of only landscape or only portrait images
    batch_size: int = 4


@dataclass
class COCODataConfig(DataConfig):
    format: str = "coco"
    root: str | None = None  # DIR with annotations/instances_{train,val}2017.json and {train,val}2017/
    train_ann: str | None = None  # None: <root>/annotations/instances_train2017.json
    val_ann: str | None = None  # None: <root>/annotations/instances_val2017.json
    train_images: str | None = None  # None: <root>/train2017
    val_images: str | None = None  # None: <root>/val2017
    keep_empty: bool = False  # also train on images without objects (negatives); evaluation always keeps them
    aspect_ratio_grouping: bool = True
    batch_size: int = 4


@dataclass
class VOCSegDataConfig(DataConfig):
    format: str = "voc_seg"
    root: str = MISSING  # a VOCdevkit: VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}
    train_split: str = "train"  # ImageSets/Segmentation/<split>.txt
    val_split: str = "val"
    sbd_root: str | None = None  # SBD masks (SegmentationClassAug PNGs or cls/*.mat) added to training only
    image_size: int = 480  # the training crop (aug.image_size); evaluation runs at each image's full size
    batch_size: int = 8


@dataclass
class COCOSegDataConfig(DataConfig):
    format: str = "coco_seg"
    root: str | None = None  # DIR with annotations/instances_{train,val}2017.json and {train,val}2017/
    train_ann: str | None = None  # None: <root>/annotations/instances_train2017.json
    val_ann: str | None = None  # None: <root>/annotations/instances_val2017.json
    train_images: str | None = None  # None: <root>/train2017
    val_images: str | None = None  # None: <root>/val2017
    classes: COCOSegClasses = COCOSegClasses.voc
    cache_dir: str | None = "~/.cache/cvtrain/coco_seg"  # rasterised masks are kept here; None: no cache
    drop_empty: bool = True  # train only on images holding a kept class; evaluation keeps every image
    image_size: int = 480
    batch_size: int = 8


# ---------------------------------------------------------------- model
@dataclass
class ModelConfig:
    name: str = MISSING
    task: str = MISSING  # classification | detection | segmentation: selects the task and the data form
    pretrained: bool = False


@dataclass
class ClassifierConfig(ModelConfig):
    task: str = "classification"
    arch: str = MISSING  # a torchvision classification builder name
    freeze: str | None = None  # freeze every stage up to and including this one (transfer learning)
    dropout: float | None = None  # None keeps the architecture's default; only for models with dropout


@dataclass
class DetectionModelConfig(ModelConfig):
    """torchvision detectors (cvtrain/models/detection.py). Size and threshold options left at None take
    torchvision's default for the chosen backbone (the 320 MobileNet variant has its own)."""

    task: str = "detection"
    backbone: str | None = None  # None: the model's first (default) backbone
    pretrained_backbone: bool = False  # ImageNet weights for the backbone (from the local torch hub cache)
    trainable_backbone_layers: int | None = None  # only with pretrained weights; None: torchvision's default


@dataclass
class FasterRCNNConfig(DetectionModelConfig):
    # The resize inside the model: shorter side to min_size, longer side at most max_size (800 / 1333).
    min_size: int | None = None
    max_size: int | None = None
    # Region proposal network. Defaults: 2000, 1000, 2000, 1000, 0.7, 0.7, 0.3, 256, 0.5, 0.0.
    rpn_pre_nms_top_n_train: int | None = None
    rpn_pre_nms_top_n_test: int | None = None
    rpn_post_nms_top_n_train: int | None = None
    rpn_post_nms_top_n_test: int | None = None
    rpn_nms_thresh: float | None = None
    rpn_fg_iou_thresh: float | None = None
    rpn_bg_iou_thresh: float | None = None
    rpn_batch_size_per_image: int | None = None
    rpn_positive_fraction: float | None = None
    rpn_score_thresh: float | None = None
    # RoI heads. Defaults: 0.05, 0.5, 100, 0.5, 0.5, 512, 0.25.
    box_score_thresh: float | None = None
    box_nms_thresh: float | None = None
    box_detections_per_img: int | None = None
    box_fg_iou_thresh: float | None = None
    box_bg_iou_thresh: float | None = None
    box_batch_size_per_image: int | None = None
    box_positive_fraction: float | None = None


@dataclass
class SSDConfig(DetectionModelConfig):
    # Defaults (ssd300_vgg16 / ssdlite320): score 0.01 / 0.001, nms 0.45 / 0.55, detections 200 / 300,
    # iou 0.5, topk 400 / 300, positive fraction 0.25.
    score_thresh: float | None = None
    nms_thresh: float | None = None
    detections_per_img: int | None = None
    iou_thresh: float | None = None
    topk_candidates: int | None = None
    positive_fraction: float | None = None


@dataclass
class RetinaNetConfig(DetectionModelConfig):
    min_size: int | None = None  # defaults: 800, 1333, 0.05, 0.5, 300, 0.5, 0.4, 1000
    max_size: int | None = None
    score_thresh: float | None = None
    nms_thresh: float | None = None
    detections_per_img: int | None = None
    fg_iou_thresh: float | None = None
    bg_iou_thresh: float | None = None
    topk_candidates: int | None = None


@dataclass
class YOLOConfig(ModelConfig):
    """`model=yolo` (cvtrain/models/yolo/model.py): every field but name/task/pretrained is a constructor option."""

    task: str = "detection"
    size: str = "n"  # n | s | m | l: width/depth multipliers
    reg_max: int = 16  # bins of the distribution focal loss per box side (1: plain distances, no DFL)
    cls_loss: str = "bce"  # bce | varifocal
    box_loss: str = "ciou"  # ciou | giou
    cls_weight: float = 0.5
    box_weight: float = 7.5
    dfl_weight: float = 1.5
    topk: int = 10  # task-aligned assigner: candidate anchors per object
    alpha: float = 0.5  # alignment = score^alpha * IoU^beta
    beta: float = 6.0
    prior_prob: float = 0.01  # initial class probability (bias of the class logits)
    conf_threshold: float = 0.001  # inference: minimum class score kept before NMS
    iou_threshold: float = 0.7  # inference: class-wise NMS IoU
    max_det: int = 300  # inference: detections kept per image


@dataclass
class YOLOv1Config(ModelConfig):
    """`model=yolo_v1` (cvtrain/models/yolo/v1.py): every field but name/task is a constructor option."""

    task: str = "detection"
    grid_size: int = 7  # S
    boxes_per_cell: int = 2  # B
    image_size: int = 448  # the model stretches every image to image_size x image_size
    backbone: str = "darknet"  # darknet | resnet18 (resnet18 accepts pretrained=true)
    width: int = 32  # darknet trunk's first width
    head: str = "conv"  # conv | fc (the paper's fully connected head)
    head_channels: int = 256
    hidden: int = 1024  # fc head only
    dropout: float = 0.5  # fc head only
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    conf_threshold: float = 0.001
    iou_threshold: float = 0.5
    max_det: int = 100


@dataclass
class SegmentationModelConfig(ModelConfig):
    """Segmentation models (cvtrain/models/segmentation.py). `aux_weight` and `class_weights` are loss
    options, read by the task; every other field is passed to `build_segmentation_model`."""

    task: str = "segmentation"
    aux_loss: bool = False  # fcn / deeplabv3: an auxiliary FCN head on layer3 (torchvision's aux_classifier)
    aux_weight: float = 0.5  # loss = ce(out) + aux_weight * ce(aux)
    class_weights: list[float] | None = None  # cross-entropy weight per class, background first; None: equal
    pretrained_backbone: bool = False  # ImageNet weights for the backbone (from the local torch hub cache)


@dataclass
class TorchvisionSegmentationConfig(SegmentationModelConfig):
    backbone: str = MISSING  # resnet50 | resnet101 | mobilenet_v3_large (deeplabv3, lraspp)


@dataclass
class FCN8sConfig(SegmentationModelConfig):
    upsample: str = "transposed"  # transposed | bilinear | nearest | bed_of_nails | max_unpool
    width: int = 64  # VGG16's first conv width (64 = VGG16); every stage scales with it
    fc_width: int = 4096  # fc6 / fc7 as convolutions
    fc_kernel: int = 7  # fc6's kernel (VGG16's 7x7 pool5 grid)
    batch_norm: bool = True  # VGG16-BN: trains from scratch; pretrained_backbone then loads vgg16_bn
    dropout: float = 0.5


@dataclass
class UNetConfig(SegmentationModelConfig):
    upsample: str = "transposed"  # transposed | bilinear
    depth: int | None = None  # down-steps; None: 4 (plain encoder) or 5 (ResNet encoder)
    base_width: int = 64
    encoder: str | None = None  # None: U-Net's own encoder; resnet18 | resnet34 | resnet50


# ---------------------------------------------------------------- optim / sched
@dataclass
class OptimConfig:
    name: str = MISSING
    lr: float = 0.1
    weight_decay: float = 1e-4
    decay_norm_and_bias: bool = False  # the usual recipe: no weight decay on norm weights and biases


@dataclass
class SGDConfig(OptimConfig):
    name: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False


@dataclass
class AdamWConfig(OptimConfig):
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class SchedConfig:
    name: str = MISSING  # step | multistep | cosine | poly | constant
    warmup_epochs: float = 0.0  # linear warmup from warmup_factor x lr
    warmup_factor: float = 0.001
    step_size: int = 30  # step: decay every step_size epochs
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])  # multistep, in epochs
    gamma: float = 0.1
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    power: float = 0.9  # poly


# ---------------------------------------------------------------- aug
@dataclass
class AugConfig:
    name: str = MISSING  # imagenet | alexnet | none (presets of the same fields)
    image_size: int = "${data.image_size}"  # type: ignore[assignment]  # the crop the network sees
    resize_size: int | None = None  # eval resize before the centre crop; None = image_size / 0.875
    random_resized_crop: bool = True
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    hflip: float = 0.5
    scale_range: list[float] | None = None  # random scale of the image content, e.g. [0.75, 1.25]; None = off
    photometric: bool = False  # detection: random brightness / contrast / saturation / hue / channel order
    # aug=yolo (cvtrain/data/yolo_transforms.py, cvtrain/data/mosaic.py); the defaults leave them off.
    hsv: list[float] | None = None  # [hue, saturation, value] jitter gains, e.g. [0.015, 0.7, 0.4]
    translate: float = 0.0  # random affine shift, a fraction of the image
    vflip: float = 0.0
    mosaic: float = 0.0  # probability of a 4-image mosaic per training sample
    close_mosaic: int = 0  # no mosaic in the last this-many epochs
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


# ---------------------------------------------------------------- trainer / logger
@dataclass
class TrainerConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    epochs: int = 5
    max_steps: int | None = None  # stop after this many optimizer steps
    # auto: bf16 (fp16 where bf16 is unsupported) autocast on CUDA, fp32 on the CPU; or 32 | bf16 | 16.
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    grad_clip: float | None = None  # max gradient norm
    log_every: int = 20  # steps between loss/lr/throughput logs
    monitor: str | None = None  # metric that picks best.ckpt; None = the task's headline metric
    resume: str | None = None  # a checkpoint to continue from
    ema: bool = False  # evaluate an exponential moving average of the weights
    ema_decay: float = 0.9999
    deterministic: bool = False


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    progress: bool = True  # rich progress bar (only on a terminal)


# ---------------------------------------------------------------- top level
@dataclass
class EvalConfig:
    save_predictions: bool = False


@dataclass
class PredictConfig:
    topk: int = 5
    score_threshold: float = 0.5
    batch_size: int = 8


@dataclass
class Config:
    command: str = "fit"  # set by the CLI: fit | eval | predict
    ckpt: str | None = None  # eval / predict: the checkpoint to load
    inputs: str | None = None  # predict: an image file or a folder of images
    predictions: str | None = None  # eval: score a saved predictions file instead of running a model
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    data: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    sched: Any = MISSING
    aug: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {
        "imagefolder": ImageFolderDataConfig,
        "shapes": ShapesDataConfig,
        "synthetic": SyntheticDataConfig,
        "voc": VOCDataConfig,
        "coco": COCODataConfig,
        "voc_seg": VOCSegDataConfig,
        "coco_seg": COCOSegDataConfig,
    },
    "model": {
        "classifier": ClassifierConfig,
        "faster_rcnn": FasterRCNNConfig,
        "ssd": SSDConfig,
        "retinanet": RetinaNetConfig,
        "yolo": YOLOConfig,
        "yolo_v1": YOLOv1Config,
        "torchvision_segmentation": TorchvisionSegmentationConfig,
        "fcn8s": FCN8sConfig,
        "unet": UNetConfig,
    },
    "optim": {"sgd": SGDConfig, "adamw": AdamWConfig},
    "sched": {"sched": SchedConfig},
    "aug": {"aug": AugConfig},
}


def shapes_image_size(task: str, scene_size: int) -> int:
    """The default `data.image_size` of `data=shapes` for a model of `task` (see `ShapesDataConfig`)."""
    return SHAPES_CLASSIFICATION_SIZE if task == "classification" else int(scene_size)


def register_schemas() -> None:
    OmegaConf.register_new_resolver("cvtrain.shapes_image_size", shapes_image_size, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def choice(value: Any) -> str:
    """The string of an enum-typed option, whether the config is typed (Enum) or loaded from a checkpoint (str)."""
    return value.value if isinstance(value, Enum) else str(value)
