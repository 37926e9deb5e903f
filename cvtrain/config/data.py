"""Schemas of the `data` group: one per dataset format. `_target_` (set in each YAML) names the format's builder,
called with the typed config (see `cvtrain/data/splits.py`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from omegaconf import MISSING

from cvtrain.config.ranges import bounded
from cvtrain.config.registry import schema

SHAPES_CLASSIFICATION_SIZE = 32  # data=shapes, classification form: one shape per image, this many pixels


class OnBadImage(StrEnum):
    error = "error"  # stop the run, naming the file
    skip = "skip"  # skip it, count it, list it in bad_images.txt in the run directory


class OnBadAnnotation(StrEnum):
    error = "error"  # stop the run, naming the file and the annotation
    skip = "skip"  # leave the annotation out, count it, list it in bad_annotations.txt in the run directory


class DecodeOn(StrEnum):
    workers = "workers"  # the data workers decode (libjpeg-turbo, at the smallest DCT scale the crop allows)
    device = "device"  # JPEGs decoded on the training device (nvJPEG on a GPU), in the training process


class ShapesLayout(StrEnum):
    voc = "voc"  # VOC2007 layout: VOC AP (difficult objects ignored) and COCO AP; monitor voc_map
    coco = "coco"  # COCO layout: COCO AP with crowd regions and non-contiguous category ids; monitor map


class COCOSegClasses(StrEnum):
    voc = "voc"  # the 20 Pascal VOC categories (by COCO name, VOC's labels); every other object is background
    all = "all"  # every category of the annotation file (80 for COCO 2017) plus background


@dataclass
class DataConfig:
    _target_: str = (
        MISSING  # the format's builder: (cfg, aug=, task=, need_train=, require_images=) -> DataSplits
    )
    format: str = MISSING
    batch_size: int = bounded(32, ge=1)  # per process: a DDP run's global batch is batch_size x world size
    eval_batch_size: int | None = bounded(None, ge=1)  # defaults to batch_size
    # loader processes: 4, or fewer on a machine that gives this process fewer cores (`available_cpus`)
    num_workers: int = bounded("${cvtrain.cpus:4}", ge=0)
    pin_memory: bool = True
    persistent_workers: bool = True
    on_bad_image: OnBadImage = OnBadImage.error
    on_bad_annotation: OnBadAnnotation = (
        OnBadAnnotation.error
    )  # which defects follow it: data/annotations/checks.py
    # the size the data is meant to be seen at; aug.image_size follows it by default
    image_size: int = bounded(224, ge=1)
    # model.pretrained_backbone's default for the models whose reference recipe starts from ImageNet weights
    # (conf/model/*.yaml read it); false for the built-in synthetic data, which trains from random weights
    pretrained_backbones: bool = True

    # The tasks the format's samples serve; `data check` checks for the model's task when it is one of them
    # (data=coco model=mask_rcnn checks the masks too), else the first. (): any task, the model's (data=shapes).
    TASKS: ClassVar[tuple[str, ...]] = ()


@schema("data", "imagefolder")
@dataclass
class ImageFolderDataConfig(DataConfig):
    format: str = "imagefolder"
    root: str = MISSING
    train_dir: str = "train"
    val_dir: str = "val"
    synset_mapping: str | None = None  # a file of "<folder> <human readable name>" lines, relative to root
    # where JPEGs are decoded: workers, or device (cvtrain/data/decoding/device_decode.py)
    decode: DecodeOn = DecodeOn.workers
    # a training class folder without images is refused (as torchvision's ImageFolder does); true: keep it as a
    # class (its index stays, e.g. to match another split or a checkpoint) and warn
    allow_empty_classes: bool = False

    TASKS: ClassVar[tuple[str, ...]] = ("classification",)


@schema("data", "shapes")
@dataclass
class ShapesDataConfig(DataConfig):
    format: str = "shapes"
    cache_dir: str = "~/.cache/cvtrain/shapes"
    seed: int = bounded(0, ge=0)
    # The size the network sees (aug.image_size follows it): 32 px single shapes for a classifier, the whole scene
    # (scene_size) for a detection or segmentation model, so crops and letterboxes never cut a scene down.
    image_size: int = "${cvtrain.shapes_image_size:${model.task},${.scene_size}}"  # type: ignore[assignment]
    train_per_class: int = bounded(400, ge=1)  # classification form
    val_per_class: int = bounded(40, ge=1)
    # detection / segmentation forms: side of each multi-object scene, in pixels
    scene_size: int = bounded(128, ge=1)
    train_images: int = bounded(512, ge=1)  # detection / segmentation forms: number of scenes per split
    val_images: int = bounded(128, ge=1)
    layout: ShapesLayout = ShapesLayout.voc  # which copy the detection form reads


@schema("data", "synthetic")
@dataclass
class SyntheticDataConfig(DataConfig):
    format: str = "synthetic"
    num_classes: int = bounded(10, ge=1)
    length: int = bounded(512, ge=1)
    num_workers: int = 0  # tensors are already in memory


@schema("data", "voc")
@dataclass
class VOCDataConfig(DataConfig):
    format: str = "voc"
    root: str = MISSING  # a VOCdevkit folder holding VOC2007/ and/or VOC2012/
    years: list[int] = field(default_factory=lambda: [2007, 2012])  # the years read for training
    train_split: str = "trainval"  # ImageSets/Main/<split>.txt of every year in `years`
    val_years: list[int] | None = field(default_factory=lambda: [2007])  # None: the same as `years`
    val_split: str = "test"
    use_difficult: bool = False  # train on `difficult` objects too (evaluation always ignores them)
    classes: list[str] | None = None  # the object classes of VOC-layout data; None: the 20 Pascal VOC classes
    aspect_ratio_grouping: bool = True  # batches of only landscape or only portrait images
    batch_size: int = 4
    # the size YOLO letterboxes to (Ultralytics' imgsz, cfg/default.yaml); the torchvision detectors resize inside
    image_size: int = 640

    TASKS: ClassVar[tuple[str, ...]] = ("detection",)


@schema("data", "yolo_txt")
@dataclass
class YoloTxtDataConfig(DataConfig):
    format: str = "yolo_txt"
    root: str = MISSING  # the folder holding the Ultralytics data.yaml (path, train, val, names)
    yaml: str = "data.yaml"  # the dataset file, relative to root
    aspect_ratio_grouping: bool = True  # batches of only landscape or only portrait images
    batch_size: int = 4
    # the size YOLO letterboxes to (Ultralytics' imgsz, cfg/default.yaml); the torchvision detectors resize inside
    image_size: int = 640

    TASKS: ClassVar[tuple[str, ...]] = ("detection", "instance_segmentation")


@dataclass
class COCOFilesConfig(DataConfig):
    """Where a COCO-format dataset lives: explicit files, else the standard COCO 2017 names under `root`."""

    root: str | None = None  # DIR with annotations/instances_{train,val}2017.json and {train,val}2017/
    train_ann: str | None = None  # None: <root>/annotations/instances_train2017.json
    val_ann: str | None = None  # None: <root>/annotations/instances_val2017.json
    train_images: str | None = None  # None: <root>/train2017
    val_images: str | None = None  # None: <root>/val2017


@schema("data", "coco")
@dataclass
class COCODataConfig(COCOFilesConfig):
    format: str = "coco"
    keep_empty: bool = False  # also train on images without objects (negatives); evaluation always keeps them
    aspect_ratio_grouping: bool = True
    batch_size: int = 4
    # the size YOLO letterboxes to (Ultralytics' imgsz, cfg/default.yaml); the torchvision detectors resize inside
    image_size: int = 640

    TASKS: ClassVar[tuple[str, ...]] = ("detection", "instance_segmentation")


@schema("data", "voc_seg")
@dataclass
class VOCSegDataConfig(DataConfig):
    format: str = "voc_seg"
    root: str | None = None  # a VOCdevkit: VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}
    train_split: str = "train"  # ImageSets/Segmentation/<split>.txt
    val_split: str = "val"
    sbd_root: str | None = None  # SBD masks (SegmentationClassAug PNGs or cls/*.mat) added to training only
    classes: list[str] | None = None  # mask values 1..K of VOC-layout data (0 is background); None: VOC's 20
    image_size: int = 480  # the training crop (aug.image_size); evaluation runs at each image's full size
    batch_size: int = 8

    TASKS: ClassVar[tuple[str, ...]] = ("segmentation",)


@schema("data", "coco_seg")
@dataclass
class COCOSegDataConfig(COCOFilesConfig):
    format: str = "coco_seg"
    classes: COCOSegClasses = COCOSegClasses.voc
    cache_dir: str | None = "~/.cache/cvtrain/coco_seg"  # rasterised masks are kept here; None: no cache
    drop_empty: bool = True  # train only on images holding a kept class; evaluation keeps every image
    image_size: int = 480
    batch_size: int = 8

    TASKS: ClassVar[tuple[str, ...]] = ("segmentation",)


def available_cpus(at_most: int) -> int:
    """The CPU cores this process may run on (its affinity, as a container or `taskset` limits it), at most
    `at_most`: the default `data.num_workers`, as more loader processes than cores only compete for them."""
    return max(1, min(int(at_most), len(os.sched_getaffinity(0))))


def shapes_image_size(task: str, scene_size: int) -> int:
    """The default `data.image_size` of `data=shapes` for a model of `task` (see `ShapesDataConfig`)."""
    return SHAPES_CLASSIFICATION_SIZE if task == "classification" else int(scene_size)
