"""Detection builders from composed configs (data=voc, data=coco, data=shapes), aspect-ratio grouped batches
(`cvtrain/data/detection_splits.py`), the ground truth the datasets provide, and the real VOC / COCO samples
loaded and scored through the builders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DistributedSampler

from cvtrain.config import Config
from cvtrain.contracts.batch import Batch
from cvtrain.contracts.ground_truth import DetectionGroundTruth
from cvtrain.data.annotations.class_names import VOC_CLASSES
from cvtrain.data.coco.detection import COCODetection, coco_paths
from cvtrain.data.detection_splits import AspectRatioGrouping, GroupedBatchSampler
from cvtrain.data.splits import build_data
from cvtrain.data.voc.detection import VOCDetection
from cvtrain.errors import ConfigError, DataError
from cvtrain.metrics.detection import detection_evaluator
from tests.conftest import compose_config, fixture_dir


def config(*overrides: str) -> Config:
    return compose_config("model=faster_rcnn", *overrides)


def build(cfg: Config, need_train: bool = True, require_images: bool = True):
    return build_data(
        cfg.data, cfg.aug, task=cfg.model.task, need_train=need_train, require_images=require_images
    )


def write_jpeg(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(path)


def write_voc_year(
    root: Path, year: int, images: dict[str, tuple[int, int, str]], splits: dict[str, list[str]]
):
    """images: stem -> (width, height, objects XML)."""
    year_dir = root / f"VOC{year}"
    for stem, (width, height, objects) in images.items():
        write_jpeg(year_dir / "JPEGImages" / f"{stem}.jpg", width, height)
        (year_dir / "Annotations").mkdir(parents=True, exist_ok=True)
        (year_dir / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{objects}</annotation>"
        )
    (year_dir / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split, stems in splits.items():
        (year_dir / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))


def voc_object(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x0, y0, x1, y1 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


# ------------------------------------------------------------------------------------------ grouped batches


def test_batches_come_from_one_group_in_the_samplers_order() -> None:
    groups = [0, 1, 0, 0, 1, 1, 0, 1, 0, 0]
    sampler = GroupedBatchSampler(sampler=list(range(10)), group_ids=groups, batch_size=2)
    assert list(sampler) == [[0, 2], [1, 4], [3, 6], [5, 7], [8, 9]] and len(sampler) == 5
    reverse = GroupedBatchSampler(sampler=list(range(9, -1, -1)), group_ids=groups, batch_size=2)
    assert list(reverse) == [[9, 8], [7, 5], [6, 3], [4, 1], [2, 0]]


def test_an_epoch_has_len_sampler_over_batch_size_batches_padded_within_a_group() -> None:
    # full batches first; then the fullest leftovers, completed with their own group's images; the rest dropped
    sampler = GroupedBatchSampler(
        sampler=[0, 1, 2, 3, 4, 5, 6], group_ids=[0, 0, 0, 1, 1, 1, 2], batch_size=2
    )
    assert list(sampler) == [[0, 1], [3, 4], [2, 0]] and len(sampler) == 3
    lonely = GroupedBatchSampler(sampler=[3, 2, 1, 0], group_ids=[0, 1, 2, 3], batch_size=2)
    assert list(lonely) == [[3, 3], [2, 2]]
    tiny = GroupedBatchSampler(sampler=[0], group_ids=[0], batch_size=4)
    assert list(tiny) == [[0, 0, 0, 0]] and len(tiny) == 1


def test_grouping_follows_a_distributed_samplers_shard_and_epoch() -> None:
    groups = [i % 3 == 0 for i in range(23)]  # 8 portrait, 15 landscape
    factory = AspectRatioGrouping(tuple(int(g) for g in groups))
    epochs = []
    for epoch in (0, 1):
        per_rank = []
        for rank in (0, 1):
            dist_sampler = DistributedSampler(range(23), num_replicas=2, rank=rank, shuffle=True, seed=3)
            dist_sampler.set_epoch(epoch)
            batches = list(factory(dist_sampler, 3))
            assert len(batches) == len(factory(dist_sampler, 3)) == 12 // 3  # equal on every rank (DDP)
            assert all(len(b) == 3 and len({groups[i] for i in b}) == 1 for b in batches)
            assert {i for b in batches for i in b} <= set(dist_sampler)  # only this rank's shard
            per_rank.append(batches)
        epochs.append(per_rank)
    assert epochs[0] != epochs[1]  # set_epoch reshuffles


# ----------------------------------------------------------------------------------------------- data=voc


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit"
    write_voc_year(
        root,
        2007,
        {
            "000001": (60, 40, voc_object("dog", (1, 1, 20, 30)) + voc_object("cat", (10, 5, 50, 35), 1)),
            "000002": (40, 60, voc_object("person", (5, 5, 30, 50)) + voc_object("car", (10, 10, 5, 20))),
            "000003": (60, 40, voc_object("bird", (20, 10, 40, 30))),
        },
        {"trainval": ["000001", "000002"], "test": ["000003"], "val": ["000002"]},
    )
    write_voc_year(
        root,
        2012,
        {"2012_000001": (50, 50, voc_object("horse", (2, 2, 48, 40)))},
        {"trainval": ["2012_000001"], "val": ["2012_000001"]},
    )
    return root


def test_voc_classic_recipe_trains_on_both_years_and_evaluates_on_2007_test(voc_root: Path) -> None:
    splits = build(
        config("data=voc", f"data.root={voc_root}", "aug=detection", "data.on_bad_annotation=skip")
    )
    assert isinstance(splits.train, VOCDetection) and isinstance(splits.val, VOCDetection)
    assert splits.class_names == list(VOC_CLASSES)
    assert [r.image_id for r in splits.train.records] == ["000001", "000002", "2012_000001"]
    assert [r.image_id for r in splits.val.records] == ["000003"]
    [problem] = splits.problems
    assert (
        problem.file.endswith("000002.xml")
        and problem.where == "object 1 (car)"
        and "empty box" in problem.what
    )
    # the difficult cat is no training target; grouping by orientation (000002 is portrait)
    _, target, _ = splits.train[0]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog")]
    assert splits.train.batch_sampler_factory == AspectRatioGrouping((0, 1, 0))
    assert not hasattr(splits.val, "batch_sampler_factory")


def test_voc_options(voc_root: Path) -> None:
    cfg = config(
        "data=voc",
        f"data.root={voc_root}",
        "data.val_years=null",
        "data.val_split=val",
        "data.use_difficult=true",
        "data.on_bad_annotation=skip",
        "data.aspect_ratio_grouping=false",
    )
    splits = build(cfg)
    assert [r.image_id for r in splits.val.records] == ["000002", "2012_000001"]  # val_years null: the years
    _, target, _ = splits.train[0]
    assert len(target["labels"]) == 2  # use_difficult keeps the difficult cat
    assert not hasattr(splits.train, "batch_sampler_factory")
    assert build(cfg, need_train=False).train is None


def test_detection_data_needs_a_detection_model(voc_root: Path) -> None:
    cfg = config("data=voc", f"data.root={voc_root}")
    with pytest.raises(ConfigError, match="detection model"):
        build_data(cfg.data, cfg.aug, task="classification", need_train=True)


# ---------------------------------------------------------------------------------------------- data=coco


def write_coco_split(
    root: Path, split: str, images: list[tuple[int, int, int]], annotations: list[dict]
) -> None:
    categories = [{"id": 3, "name": "car"}, {"id": 18, "name": "dog"}, {"id": 90, "name": "toothbrush"}]
    for image_id, width, height in images:
        write_jpeg(root / f"{split}2017" / f"{image_id:012d}.jpg", width, height)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    dataset = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h} for i, w, h in images],
        "annotations": [{"id": n + 1, "iscrowd": 0, **a} for n, a in enumerate(annotations)],
        "categories": categories,
    }
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(dataset))


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    annotations = [
        {"image_id": 5, "category_id": 18, "bbox": [2, 3, 20, 10]},
        {"image_id": 5, "category_id": 90, "bbox": [10, 10, 5, 5], "iscrowd": 1},
        {"image_id": 7, "category_id": 3, "bbox": [1, 1, 0, 9]},  # a bad (empty) box: reported, skipped
    ]
    write_coco_split(root, "train", [(5, 40, 30), (7, 30, 40), (9, 30, 30)], annotations)
    write_coco_split(root, "val", [(5, 40, 30), (9, 30, 30)], annotations[:2])
    return root


def test_coco_paths_default_under_root_and_ids_map_to_contiguous_labels(coco_root: Path) -> None:
    splits = build(config("data=coco", f"data.root={coco_root}", "data.on_bad_annotation=skip"))
    assert isinstance(splits.train, COCODetection) and splits.class_names == ["car", "dog", "toothbrush"]
    assert splits.val.label_to_cat_id == {0: 3, 1: 18, 2: 90}
    assert splits.train.image_ids == [5] and splits.val.image_ids == [5, 9]  # empty images: eval only
    _, target, meta = splits.train[0]
    assert target["labels"].tolist() == [1] and meta["image_id"] == 5  # the crowd region is no target
    assert [(p.action, p.where) for p in splits.problems] == [("skipped", "annotation id 3 (image id 7)")]
    with pytest.raises(
        DataError, match=r"instances_train2017\.json: annotation id 3 \(image id 7\): empty box"
    ):
        build(config("data=coco", f"data.root={coco_root}"))
    keep = build(
        config("data=coco", f"data.root={coco_root}", "data.keep_empty=true", "data.on_bad_annotation=skip")
    )
    assert keep.train.image_ids == [5, 7, 9]
    assert keep.train.batch_sampler_factory == AspectRatioGrouping((0, 1, 0))


def test_coco_explicit_paths_and_a_missing_root(coco_root: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    (coco_root / "val2017").rename(moved)
    ann = coco_root / "annotations" / "instances_val2017.json"
    splits = build(config("data=coco", f"data.val_ann={ann}", f"data.val_images={moved}"), need_train=False)
    assert len(splits.val) == 2 and splits.val[0][2]["path"].startswith(str(moved))
    with pytest.raises(ConfigError, match=r"data.root=DIR .*data.train_ann=FILE"):
        build(config("data=coco", f"data.val_ann={ann}", f"data.val_images={moved}"))


def test_coco_paths_take_each_of_ann_and_images_explicitly_or_under_root(tmp_path: Path) -> None:
    ann = tmp_path / "mine.json"
    cfg = config("data=coco", f"data.root={tmp_path / 'coco'}", f"data.val_ann={ann}").data
    assert coco_paths(cfg, "val") == (ann, tmp_path / "coco" / "val2017")
    assert coco_paths(cfg, "train") == (
        tmp_path / "coco" / "annotations" / "instances_train2017.json",
        tmp_path / "coco" / "train2017",
    )
    alone = config("data=coco", f"data.val_ann={ann}").data
    with pytest.raises(ConfigError, match=r"data=coco needs data.root=DIR .*or data.val_images=DIR") as e:
        coco_paths(alone, "val")
    assert "val_ann" not in str(e.value)  # it was given
    assert coco_paths(alone, "val", require_images=False) == (ann, None)  # scoring needs the json alone


def test_scoring_reads_the_annotation_file_alone(coco_root: Path) -> None:
    ann = coco_root / "annotations" / "instances_val2017.json"
    splits = build(config("data=coco", f"data.val_ann={ann}"), need_train=False, require_images=False)
    assert splits.val.image_ids == [5, 9] and splits.val.image_dir is None


# ------------------------------------------------------------------------------------------- ground truth


def test_voc_provides_its_records_and_a_cached_coco_view(voc_root: Path) -> None:
    val = build(config("data=voc", f"data.root={voc_root}"), need_train=False).val
    assert isinstance(val, DetectionGroundTruth)
    assert val.voc_records() is val.records
    truth = val.coco_ground_truth()
    assert truth is val.coco_ground_truth()  # built once
    assert dict(truth.label_to_cat_id) == {label: label + 1 for label in range(20)}
    assert truth.image_id_map == val.coco_image_ids == {"000003": 1}
    assert [a["category_id"] for a in truth.coco.dataset["annotations"]] == [VOC_CLASSES.index("bird") + 1]


def test_coco_provides_its_own_file_and_no_voc_records(coco_root: Path) -> None:
    val = build(config("data=coco", f"data.root={coco_root}"), need_train=False).val
    assert isinstance(val, DetectionGroundTruth) and val.voc_records() is None
    truth = val.coco_ground_truth()
    assert truth.coco is val.coco and truth.label_to_cat_id == {0: 3, 1: 18, 2: 90}
    assert truth.image_id_map is None


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_annotations_alone_build_the_val_split_without_images(
    voc_root: Path, coco_root: Path, fmt: str
) -> None:
    # `cvtrain eval predictions=FILE`: the validation annotations are enough (require_images=False)
    if fmt == "voc":
        shutil.rmtree(voc_root / "VOC2007" / "JPEGImages")
        cfg = config("data=voc", f"data.root={voc_root}", "data.years=[2007]")
    else:
        shutil.rmtree(coco_root / "val2017")
        cfg = config("data=coco", f"data.root={coco_root}")
    with pytest.raises(DataError, match="does not exist"):
        build(cfg, need_train=False)
    splits = build(cfg, need_train=False, require_images=False)
    assert splits.train is None and len(splits.val) in (1, 2)
    assert isinstance(splits.val, DetectionGroundTruth)


# -------------------------------------------------------------------------------------------- data=shapes


@pytest.mark.parametrize(("layout", "kind"), [("voc", VOCDetection), ("coco", COCODetection)])
def test_shapes_detection_form_reads_either_layout(tmp_path: Path, layout: str, kind: type) -> None:
    cfg = config(
        "data=shapes",
        f"data.cache_dir={tmp_path}",
        "data.scene_size=48",
        "data.train_images=3",
        "data.val_images=2",
        f"data.layout={layout}",
    )
    splits = build(cfg)
    assert isinstance(splits.val, kind) and len(splits.train) == 3 and len(splits.val) == 2
    assert splits.class_names == ["circle", "square", "triangle", "diamond", "cross"]
    image, target, _ = splits.train[0]
    assert image.shape == (3, 48, 48) and image.dtype == torch.uint8 and len(target["labels"]) >= 1


# ------------------------------------------------------------------------------------ the real samples


def perfect_predictions(dataset) -> tuple[Batch, list[dict[str, torch.Tensor]]]:
    """Every ground-truth object of the dataset detected exactly, with score 1."""
    metas, predictions = [], []
    for index in range(len(dataset)):
        _, target, meta = dataset[index]
        metas.append(meta)
        boxes = target["boxes"].as_subclass(torch.Tensor)
        predictions.append({"boxes": boxes, "scores": torch.ones(len(boxes)), "labels": target["labels"]})
    return Batch(images=[], targets=[], meta=metas), predictions


def test_the_coco_sample_loads_and_scores() -> None:
    root = fixture_dir("coco-sample")
    ann, images = root / "annotations.json", root / "images"
    cfg = config(
        "data=coco", f"data.train_ann={ann}", f"data.train_images={images}", f"data.val_ann={ann}",
        f"data.val_images={images}",
    )  # fmt: skip
    splits = build(cfg)
    assert (
        len(splits.class_names) == 80 and len(splits.val) == 6 and len(splits.train) == 5
    )  # one image is empty
    image, target, meta = splits.train[0]
    assert (
        image.shape[0] == 3 and target["boxes"].shape[1] == 4 and meta["orig_size"] == tuple(image.shape[-2:])
    )
    evaluator, headline = detection_evaluator(splits.val)
    evaluator.update(*perfect_predictions(splits.val))
    assert headline == "map" and evaluator.compute()["map"] == pytest.approx(1.0)


def test_the_voc_sample_loads_and_scores(tmp_path: Path) -> None:
    sample = fixture_dir("voc-sample") / "VOCdevkit" / "VOC2012"
    year = tmp_path / "VOCdevkit" / "VOC2012"
    year.mkdir(parents=True)
    for folder in ("Annotations", "JPEGImages"):
        (year / folder).symlink_to(sample / folder)
    (year / "ImageSets" / "Main").mkdir(parents=True)
    (year / "ImageSets" / "Main" / "val.txt").write_text("2007_000063\n2011_003353\n")
    cfg = config(
        "data=voc", f"data.root={tmp_path / 'VOCdevkit'}", "data.years=[2012]", "data.val_years=[2012]",
        "data.val_split=val",
    )  # fmt: skip
    splits = build(cfg, need_train=False)
    assert [r.image_id for r in splits.val.records] == ["2007_000063", "2011_003353"]
    evaluator, headline = detection_evaluator(splits.val)
    evaluator.update(*perfect_predictions(splits.val))
    metrics = evaluator.compute()
    assert headline == "voc_map" and metrics["voc_map"] == pytest.approx(1.0) and metrics["map"] > 0.99
