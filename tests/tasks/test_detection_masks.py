"""The detection task with instance masks (Mask R-CNN): masks through collate and predict in original pixels,
mask AP beside box AP (equal to pycocotools' segm evaluation), RLE in predictions.json that re-scores alike, and
masks drawn by `cvtrain predict`."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from cvtrain.commands.score import score_results
from cvtrain.contracts.batch import Batch
from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.shapes.detection import ensure_shapes_detection, shapes_coco_paths
from cvtrain.data.shapes.scenes import SHAPE_CLASSES
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.metrics.coco import COCO_METRICS, metric_names
from cvtrain.tasks.detection import DetectionTask, binary_masks
from cvtrain.tasks.detection_outputs import DetectionOutputs
from tests.conftest import same_coco_stats

EVAL = detection_transforms(
    type("Aug", (), {"hflip": 0.0, "scale_range": None, "photometric": False, "mean": [0.5] * 3})(),
    train=False,
)


@pytest.fixture(scope="module")
def val(tmp_path_factory: pytest.TempPathFactory) -> COCODetection:
    folder = ensure_shapes_detection(tmp_path_factory.mktemp("shapes"), image_size=64, train_images=1,
                                     val_images=10, seed=3)  # fmt: skip
    ann_file, image_dir = shapes_coco_paths(folder, "val")
    return COCODetection(ann_file=ann_file, image_dir=image_dir, keep_empty=False, train=False, transforms=EVAL,
                         masks=True)  # fmt: skip


def task() -> DetectionTask:
    return DetectionTask(class_names=list(SHAPE_CLASSES), masks=True)


def predictions_from_truth(dataset: COCODetection, seed: int) -> list[tuple[Batch, list[dict]]]:
    """The objects themselves with varied scores; every other mask loses its bottom rows (imperfect masks on
    perfect boxes), and a false positive per image."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for index in range(len(dataset)):
        _, target, meta = dataset[index]
        masks = target["masks"].as_subclass(torch.Tensor).bool()
        masks[::2, 40:] = False
        spurious = torch.zeros(1, *masks.shape[-2:], dtype=torch.bool)
        spurious[0, :8, :8] = True
        prediction = {
            "boxes": torch.cat([target["boxes"].as_subclass(torch.Tensor), torch.tensor([[0.0, 0, 8, 8]])]),
            "scores": torch.rand(len(masks) + 1, generator=generator),
            "labels": torch.cat([target["labels"], torch.tensor([index % 5])]),
            "masks": torch.cat([masks, spurious]),
        }
        batches.append((Batch(images=[], targets=[], meta=[meta]), [prediction]))
    return batches


def test_collate_keeps_the_masks_and_predict_returns_them_in_original_pixels(val: COCODetection) -> None:
    batch = task().collate([val[0], val[1]])
    assert all(t["masks"].shape == (len(t["boxes"]), 64, 64) for t in batch.targets)
    assert type(batch.targets[0]["masks"]) is torch.Tensor

    class Stub(nn.Module):
        def forward(self, images):  # a Mask R-CNN's output for an input resized to 32 x 32
            probabilities = torch.zeros(1, 1, 32, 32)
            probabilities[0, 0, :16, :8] = 0.9
            return [{"boxes": torch.tensor([[0.0, 0, 8, 16]]), "scores": torch.tensor([0.8]),
                     "labels": torch.tensor([1]), "masks": probabilities}]  # fmt: skip

    meta = [{"input_size": (32, 32), "orig_size": (64, 96), "image_id": 1}]
    (prediction,) = task().predict(
        Stub(), Batch(images=[torch.zeros(3, 32, 32, dtype=torch.uint8)], targets=[None], meta=meta)
    )
    assert prediction["masks"].shape == (1, 64, 96) and prediction["masks"].dtype == torch.bool
    assert prediction["masks"][0, :31, :23].all() and not prediction["masks"][0, 34:, 26:].any()
    assert prediction["boxes"].tolist() == [[0.0, 0.0, 24.0, 32.0]]
    assert binary_masks(torch.zeros(0, 1, 32, 32), (64, 96)).shape == (0, 64, 96)


def test_mask_ap_beside_box_ap_equals_pycocotools(val: COCODetection, tmp_path: Path) -> None:
    evaluator, sink = (
        task().evaluator(val),
        DetectionOutputs(class_names=list(SHAPE_CLASSES)).results_writer(val, tmp_path),
    )
    for batch, predictions in predictions_from_truth(val, seed=0):
        evaluator.update(batch, predictions)
        sink.update(batch, predictions)
    sink.write()
    metrics = evaluator.compute()
    assert list(metrics) == [*COCO_METRICS, *metric_names("segm")]
    assert metrics["map"] > metrics["segm_map"] > 0.3  # boxes perfect, half the masks cut short
    results = json.loads((tmp_path / "predictions.json").read_text())
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} == set(results[0])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(val.ann_file))
        reference = COCOeval(gt, gt.loadRes(str(tmp_path / "predictions.json")), iouType="segm")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    assert same_coco_stats([metrics[k] for k in metric_names("segm")], [float(v) for v in reference.stats])
    # the saved file re-scores as boxes and masks, to the same numbers
    assert score_results(val, tmp_path / "predictions.json") == metrics


def test_predict_draws_the_masks(val: COCODetection, tmp_path: Path) -> None:
    _, _, meta = val[0]
    writer = DetectionOutputs(class_names=list(SHAPE_CLASSES)).predict_writer(tmp_path)
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 20:40, 20:40] = True
    prediction = {"boxes": torch.tensor([[20.0, 20, 40, 40]]), "scores": torch.tensor([0.9]),
                  "labels": torch.tensor([0]), "masks": mask}  # fmt: skip
    writer.update(Batch(images=[], targets=[], meta=[meta]), [prediction])
    writer.write()
    (record,) = json.loads((tmp_path / "predictions.json").read_text())
    assert record["detections"][0]["segmentation"]["size"] == [64, 64]
    drawn = np.asarray(Image.open(record["drawn"]).convert("RGB")).astype(int)
    original = np.asarray(Image.open(meta["path"]).convert("RGB")).astype(int)
    inside, outside = np.abs(drawn - original)[25:35, 25:35], np.abs(drawn - original)[50:60, 2:12]
    assert inside.mean() > 20 and outside.mean() < 3  # tinted inside the mask only
