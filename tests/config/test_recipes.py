"""`cvtrain fit model=M data=D`, as typed, composes the model's reference recipe for every data format it serves;
what the user writes (command line, +experiment=) wins. The values are written here from the sources the YAMLs cite."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from cvtrain.engine.optim import run_lr
from tests.conftest import compose_config, compose_raw

# torchvision references/classification/train.py and README (ResNet): -b 32 on 8 GPUs, --lr 0.1, --momentum 0.9,
# --wd 1e-4 (model.parameters(): every parameter decays), StepLR --lr-step-size 30 --lr-gamma 0.1, --epochs 90,
# RandomResizedCrop(224) + RandomHorizontalFlip; eval Resize(256) + CenterCrop(224).
TV_CLASSIFICATION = {
    "optim.name": "sgd", "optim.lr": 0.1, "optim.base_batch": 256, "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4, "optim.decay_norm_and_bias": True,
    "sched.name": "step", "sched.step_size": 30, "sched.gamma": 0.1, "sched.warmup_epochs": 0,
    "aug.name": "imagenet", "aug.random_resized_crop": True, "aug.crop_scale": [0.08, 1.0], "aug.hflip": 0.5,
    "trainer.epochs": 90, "trainer.ema": False,
}  # fmt: skip
# README "AlexNet and VGG": `--lr 1e-2`, the rest as above.
TV_ALEXNET_VGG = {**TV_CLASSIFICATION, "optim.lr": 0.01}
# torchvision references/detection/train.py: --lr 0.02 for 8 GPUs x -b 2, --momentum 0.9, --wd 1e-4 on every
# parameter, MultiStepLR --lr-steps 16 22 --lr-gamma 0.1, --epochs 26, --data-augmentation hflip; engine.py: LinearLR
# from 1/1000 over min(1000, len(data_loader) - 1) iterations of epoch 0.
TV_DETECTION = {
    "optim.name": "sgd", "optim.lr": 0.02, "optim.base_batch": 16, "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4, "optim.decay_norm_and_bias": True,
    "sched.name": "multistep", "sched.milestones": [16, 22], "sched.gamma": 0.1,
    "sched.warmup_steps": 1000, "sched.warmup_factor": 0.001,
    "aug.name": "hflip", "aug.hflip": 0.5, "aug.photometric": False, "aug.scale_range": None,
    "trainer.epochs": 26, "trainer.ema": False,
}  # fmt: skip
# references/detection/README.md, RetinaNet: `--lr 0.01`.
TV_RETINANET = {**TV_DETECTION, "optim.lr": 0.01}
# references/detection/README.md, SSD300 VGG16: --epochs 120 --lr-steps 80 110 --lr 0.002 --batch-size 4 (x 8 GPUs)
# --weight-decay 0.0005 --data-augmentation ssd (RandomPhotometricDistort, RandomZoomOut, RandomIoUCrop, flip).
TV_SSD = {
    **TV_DETECTION, "optim.lr": 0.002, "optim.base_batch": 32, "optim.weight_decay": 5e-4,
    "sched.milestones": [80, 110], "aug.name": "ssd", "aug.photometric": True, "aug.scale_range": [0.25, 1.0],
    "trainer.epochs": 120,
}  # fmt: skip
# references/segmentation/README.md (FCN, DeepLabV3): --lr 0.02 -b 4 (x 8 GPUs) --aux-loss; train.py: --momentum 0.9,
# --wd 1e-4 on every parameter, poly (1 - x / (iters_per_epoch x epochs)) ** 0.9 per iteration, --epochs 30,
# RandomResize(0.5 x 520, 2.0 x 520) + flip + RandomCrop(480).
TV_SEGMENTATION = {
    "optim.name": "sgd", "optim.lr": 0.02, "optim.base_batch": 32, "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4, "optim.decay_norm_and_bias": True,
    "sched.name": "poly", "sched.power": 0.9, "sched.warmup_epochs": 0, "sched.min_lr_ratio": 0.0,
    "aug.name": "segmentation", "aug.scale_range": [0.5, 2.0], "aug.hflip": 0.5,
    "trainer.epochs": 30, "trainer.ema": False, "model.aux_loss": True,
}  # fmt: skip
# README, LR-ASPP MobileNetV3: -b 4 (x 8 GPUs) --wd 0.000001, no --aux-loss, train.py's default --lr 0.01.
TV_LRASPP = {**TV_SEGMENTATION, "optim.lr": 0.01, "optim.weight_decay": 1e-6, "model.aux_loss": False}
# Ultralytics cfg/default.yaml: optimizer auto (AdamW for short runs, beta1 0.9), nbs 64, weight_decay 5e-4 (not on
# norm weights and biases), lrf 0.01 with a linear schedule (cos_lr false), warmup_epochs 3, epochs 100, imgsz 640,
# mosaic 1.0, hsv 0.015 / 0.7 / 0.4, translate 0.1, scale 0.5, fliplr 0.5, close_mosaic 10; ModelEMA decay 0.9999.
ULTRALYTICS = {
    "optim.name": "adamw", "optim.lr": 0.002, "optim.base_batch": 64, "optim.betas": [0.9, 0.999],
    "optim.weight_decay": 5e-4, "optim.decay_norm_and_bias": False,
    "sched.name": "poly", "sched.power": 1.0, "sched.min_lr_ratio": 0.01, "sched.warmup_epochs": 3,
    "aug.name": "yolo", "aug.mosaic": 1.0, "aug.hsv": [0.015, 0.7, 0.4], "aug.translate": 0.1,
    "aug.scale_range": [0.5, 1.5], "aug.hflip": 0.5, "aug.close_mosaic": 10,
    "trainer.epochs": 100, "trainer.ema": True, "trainer.ema_decay": 0.9999,
}  # fmt: skip

RECIPES = {
    "resnet18": TV_CLASSIFICATION,
    "resnet50": TV_CLASSIFICATION,
    "alexnet": TV_ALEXNET_VGG,
    "vgg16": TV_ALEXNET_VGG,
    "faster_rcnn": TV_DETECTION,
    "mask_rcnn": TV_DETECTION,
    "retinanet": TV_RETINANET,
    "ssd": TV_SSD,
    "fcn": TV_SEGMENTATION,
    "deeplabv3": TV_SEGMENTATION,
    "lraspp": TV_LRASPP,
    "yolo": ULTRALYTICS,
}
# The formats each model's task reads (DataConfig.TASKS; shapes takes the model's form, synthetic is classification).
FORMATS = {
    "classification": ("imagefolder", "imagenet", "shapes", "synthetic"),
    "detection": ("voc", "coco", "yolo_txt", "shapes"),
    "instance_segmentation": ("coco", "shapes"),
    "segmentation": ("voc_seg", "coco_seg", "shapes"),
}
# The image size each family trains at on its reference data (the torchvision detectors resize inside, to 800 / 1333).
IMAGE_SIZE = {
    "imagenet": 224,
    "imagefolder": 224,
    "voc_seg": 480,
    "coco_seg": 480,
    "yolo_txt": 640,
    "voc": 640,
}


def _cases() -> list[tuple[str, str]]:
    tasks = {m: compose_raw(f"model={m}").model.task for m in RECIPES}
    return [(m, d) for m in RECIPES for d in FORMATS[tasks[m]]]


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


@pytest.mark.parametrize(("model", "data"), _cases())
def test_the_model_brings_its_reference_recipe_on_every_format_it_reads(model: str, data: str) -> None:
    cfg = compose_raw(f"model={model}", f"data={data}")
    expected = RECIPES[model]
    assert {key: _value(cfg, key) for key in expected} == expected
    if data in IMAGE_SIZE and model in ("resnet18", "resnet50", "fcn", "deeplabv3", "lraspp", "yolo"):
        assert cfg.aug.image_size == IMAGE_SIZE[data]


def test_the_command_line_and_an_experiment_beat_the_models_recipe() -> None:
    chosen = compose_raw("model=faster_rcnn", "optim=adamw", "sched=cosine", "aug=light", "trainer.epochs=3")
    assert (chosen.optim.name, chosen.optim.lr, chosen.optim.base_batch) == ("adamw", 1e-3, None)
    assert (chosen.sched.name, chosen.aug.name, chosen.trainer.epochs) == ("cosine", "light", 3)
    assert compose_raw("model=faster_rcnn", "optim.lr=0.5").optim.lr == 0.5
    # shapes_faster_rcnn keeps what it was measured with: SGD 0.02 at its batch of 8, cosine, light, 8 epochs
    exp = compose_raw("+experiment=shapes_faster_rcnn")
    assert (exp.optim.name, exp.optim.lr, exp.optim.base_batch, exp.sched.name, exp.aug.name) == (
        "sgd", 0.02, None, "cosine", "light",
    )  # fmt: skip


def test_the_demo_keeps_its_defaults() -> None:
    cfg = compose_raw()
    assert (cfg.model.name, cfg.data.format, cfg.optim.lr, cfg.optim.base_batch) == (
        "small_cnn",
        "shapes",
        0.1,
        None,
    )
    assert (cfg.sched.name, cfg.aug.name, cfg.trainer.epochs) == ("cosine", "light", 5)


# torchvision's published recipes (conf/experiment/), each as its README command and train.py's defaults set it, run
# on 8 processes: the per-process batch below times 8 is the global batch the lr is quoted for.
DETECTION_RUN = {
    "data.aspect_ratio_grouping": True, "model.backbone": "resnet50_fpn", "model.pretrained_backbone": True,
    "model.trainable_backbone_layers": 3, "data.batch_size": 2,  # -b 2 x 8 GPUs = 16
}  # fmt: skip
SEGMENTATION_RUN = {
    "data.format": "coco_seg", "data.classes": "voc", "data.batch_size": 4, "data.image_size": 480,  # -b 4 x 8 = 32
    "model.backbone": "resnet50", "model.pretrained_backbone": True, "trainer.sync_bn": True,
}  # fmt: skip
PUBLISHED = {
    # ResNet-50 v1, top-1 76.13: train.py --model resnet50 (-b 32 x 8 = 256)
    "imagenet_resnet50": {
        **TV_CLASSIFICATION, "data.format": "imagenet", "model.name": "resnet50", "data.batch_size": 32,
        "data.image_size": 224,
    },
    # box AP 37.0: --model fasterrcnn_resnet50_fpn --epochs 26 --lr-steps 16 22 --aspect-ratio-group-factor 3
    "coco_faster_rcnn": {**TV_DETECTION, **DETECTION_RUN, "data.format": "coco", "model.name": "faster_rcnn"},
    # box / mask AP 37.9 / 34.6: --model maskrcnn_resnet50_fpn, the same settings
    "coco_mask_rcnn": {**TV_DETECTION, **DETECTION_RUN, "data.format": "coco", "model.name": "mask_rcnn"},
    # box AP 36.4: --model retinanet_resnet50_fpn ... --lr 0.01
    "coco_retinanet": {**TV_RETINANET, **DETECTION_RUN, "data.format": "coco", "model.name": "retinanet"},
    # box AP 25.1: --model ssd300_vgg16 --epochs 120 --lr-steps 80 110 --lr 0.002 --batch-size 4 --weight-decay 0.0005
    # --data-augmentation ssd --weights-backbone VGG16_Weights.IMAGENET1K_FEATURES
    "coco_ssd300": {
        **TV_SSD, "data.format": "coco", "model.name": "ssd", "model.backbone": "vgg16",
        "model.pretrained_backbone": True, "data.batch_size": 4, "data.aspect_ratio_grouping": True,
    },
    # mIoU 60.5: --lr 0.02 --dataset coco -b 4 --model fcn_resnet50 --aux-loss
    "coco_fcn_resnet50": {**TV_SEGMENTATION, **SEGMENTATION_RUN, "model.name": "fcn"},
    # mIoU 66.4: --lr 0.02 --dataset coco -b 4 --model deeplabv3_resnet50 --aux-loss
    "coco_deeplabv3_resnet50": {**TV_SEGMENTATION, **SEGMENTATION_RUN, "model.name": "deeplabv3"},
    # mIoU 57.9: --dataset coco -b 4 --model lraspp_mobilenet_v3_large --wd 0.000001 (train.py's --lr 0.01)
    "coco_lraspp": {
        **TV_LRASPP, **SEGMENTATION_RUN, "model.name": "lraspp", "model.backbone": "mobilenet_v3_large",
    },
    # Detectron2 PascalVOC-Detection/faster_rcnn_R_50_FPN.yaml: 16 images at 0.02, 18,000 iterations (17.4 epochs of
    # VOC07+12 trainval), steps 12,000 / 16,000, 100 warm-up iterations, test size 800; VOC07 test.
    "voc_faster_rcnn": {
        **TV_DETECTION, **DETECTION_RUN, "data.format": "voc", "model.name": "faster_rcnn",
        "data.years": [2007, 2012], "data.train_split": "trainval", "data.val_years": [2007], "data.val_split": "test",
        "sched.milestones": [12, 15], "sched.warmup_steps": 100, "trainer.epochs": 17,
        "model.min_size": 800, "model.max_size": 1333,
    },
}  # fmt: skip


@pytest.mark.parametrize("experiment", sorted(PUBLISHED))
def test_a_published_recipe_composes_the_references_hyperparameters(experiment: str) -> None:
    cfg = compose_raw(f"+experiment={experiment}")
    expected = PUBLISHED[experiment]
    assert {key: _value(cfg, key) for key in expected} == expected


def test_a_published_recipe_scales_its_lr_to_the_global_batch_it_runs_at() -> None:
    # coco_faster_rcnn on one process of 2 images: 0.02 x 2 / 16; on 8 processes (torchrun): 0.02 exactly
    cfg = compose_config("+experiment=coco_faster_rcnn", "data.root=coco")
    assert run_lr(cfg.optim, global_batch=2) == pytest.approx(0.0025)
    assert run_lr(cfg.optim, global_batch=2 * 8) == pytest.approx(0.02)
