"""`data=voc_seg`, `data=coco_seg` and the shapes segmentation form, built from composed configs."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from cvtrain.contracts.batch import Batch
from cvtrain.data.annotations.class_names import VOC_SEG_CLASSES
from cvtrain.data.decoding.images import read_image
from cvtrain.data.decoding.palette import IGNORE_INDEX, read_index_png, write_index_png
from cvtrain.data.shapes.segmentation import SHAPES_SEGMENTATION_CLASSES
from cvtrain.data.splits import build_data
from cvtrain.data.transforms.pipelines import eval_transform
from cvtrain.errors import ConfigError
from cvtrain.metrics.segmentation import SegmentationEvaluator
from tests.conftest import VOC_SEG_SAMPLE_ID, compose_config, fixture_dir, voc_seg_sample


def config(*overrides: str):
    return compose_config("model=unet", *overrides)


def build(data, aug, *, task: str, need_train: bool = True):
    return build_data(data, aug, task=task, need_train=need_train)


def test_shapes_segmentation_form_follows_the_model(tmp_path):
    cfg = config(
        "data=shapes",
        f"data.cache_dir={tmp_path}",
        "data.scene_size=40",
        "data.train_images=3",
        "data.val_images=2",
        "data.image_size=24",
    )
    splits = build(cfg.data, cfg.aug, task=cfg.model.task)
    assert splits.class_names == list(SHAPES_SEGMENTATION_CLASSES)
    assert len(splits.train) == 3 and len(splits.val) == 2
    image, mask, meta = splits.train[0]
    assert image.shape == (3, 24, 24) and mask.shape == (24, 24)  # the training crop, aug.image_size
    image, mask, meta = splits.val[1]
    assert image.shape == (3, 40, 40) and mask.shape == (40, 40)  # evaluation: the whole scene
    assert meta["orig_size"] == (40, 40) and IGNORE_INDEX in mask.unique().tolist()  # the void outline
    assert len(list(tmp_path.glob("segmentation-*/VOCdevkit/VOC2012/SegmentationClass/*.png"))) == 5


def test_real_voc_sample_through_the_evaluation_path(tmp_path):
    devkit = voc_seg_sample(tmp_path)
    cfg = config("data=voc_seg", f"data.root={devkit}")
    splits = build(cfg.data, cfg.aug, task="segmentation", need_train=False)
    assert splits.train is None and splits.class_names == list(VOC_SEG_CLASSES)
    image, mask, meta = splits.val[0]
    truth = read_index_png(devkit / "VOC2012" / "SegmentationClass" / f"{VOC_SEG_SAMPLE_ID}.png")
    with Image.open(devkit / "VOC2012" / "JPEGImages" / f"{VOC_SEG_SAMPLE_ID}.jpg") as jpeg:
        width, height = jpeg.size
    assert image.shape == (3, height, width) and meta["orig_size"] == (height, width)  # full resolution
    assert torch.equal(mask, torch.from_numpy(truth).long())  # indices, the void border kept
    assert IGNORE_INDEX in truth and len(set(np.unique(truth)) - {0, IGNORE_INDEX}) >= 1
    # A prediction equal to the ground truth (void predicted as background) scores a perfect mIoU.
    evaluator = SegmentationEvaluator(num_classes=21, class_names=list(VOC_SEG_CLASSES))
    prediction = mask.clone()
    prediction[prediction == IGNORE_INDEX] = 0
    evaluator.update(Batch(images=image[None], targets=mask[None], meta=[meta]), prediction[None])
    assert evaluator.compute()["miou"] == 1.0
    # `cvtrain predict` applies the same evaluation transform to a bare image.
    raw = tv_tensors.Image(read_image(devkit / "VOC2012" / "JPEGImages" / f"{VOC_SEG_SAMPLE_ID}.jpg"))
    assert torch.equal(eval_transform("segmentation", cfg.aug)(raw), image)


def test_voc_seg_adds_sbd_to_training_only(tmp_path):
    devkit = voc_seg_sample(tmp_path)
    sbd = tmp_path / "SBD" / "SegmentationClassAug"
    sbd.mkdir(parents=True)
    jpeg = devkit / "VOC2012" / "JPEGImages" / "2011_003353.jpg"
    with Image.open(jpeg) as im:
        width, height = im.size
    write_index_png(sbd / "2011_003353.png", np.full((height, width), 15, dtype=np.uint8))
    cfg = config("data=voc_seg", f"data.root={devkit}", f"data.sbd_root={sbd.parent}", "data.image_size=32")
    splits = build(cfg.data, cfg.aug, task="segmentation")
    assert len(splits.train) == 2 and len(splits.val) == 1
    assert splits.train[1][0].shape == (3, 32, 32)


def test_voc_seg_errors_name_the_key_and_what_to_do(tmp_path):
    cfg = config("data=voc_seg")
    with pytest.raises(ConfigError, match="data.root=DIR"):
        build(cfg.data, cfg.aug, task="segmentation")
    cfg = config("data=voc_seg", f"data.root={voc_seg_sample(tmp_path)}")
    with pytest.raises(ConfigError, match="segmentation data but the model is a classification model"):
        build(cfg.data, cfg.aug, task="classification")


@pytest.mark.parametrize(("classes", "num_classes"), [("voc", 21), ("all", 81)])
def test_real_coco_sample_as_segmentation(tmp_path, classes, num_classes):
    sample = fixture_dir("coco-sample")
    ann = sample / "annotations.json"
    cfg = config(
        "data=coco_seg",
        f"data.train_ann={ann}",
        f"data.val_ann={ann}",
        f"data.train_images={sample / 'images'}",
        f"data.val_images={sample / 'images'}",
        f"data.classes={classes}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.image_size=48",
    )
    splits = build(cfg.data, cfg.aug, task="segmentation")
    assert len(splits.class_names) == num_classes and splits.class_names[0] == "background"
    assert len(splits.val) == 6  # evaluation keeps every image, even the one without annotations
    assert len(splits.train) < 6  # drop_empty: training skips images without a kept class
    image, mask, meta = splits.val[0]
    assert image.shape[-2:] == mask.shape and tuple(mask.shape) == meta["orig_size"]
    assert len(list((tmp_path / "cache").glob("*/*.png"))) == 1  # rasterised once, kept for the next epoch
    image, mask, _ = splits.train[0]
    assert image.shape == (3, 48, 48)


def test_coco_seg_needs_a_root_or_explicit_paths():
    cfg = config("data=coco_seg")
    with pytest.raises(ConfigError, match=r"data.root=DIR.*data.train_ann"):
        build(cfg.data, cfg.aug, task="segmentation")
