"""DetectionTask: collate, losses, predictions in original pixels, evaluators by dataset, and what it writes."""

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
from rich.console import Console
from torch import nn
from torchvision import tv_tensors

from cvtrain.commands.score import score_results
from cvtrain.contracts.batch import BadSample, Batch
from cvtrain.contracts.monitor import monitor_mode
from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.inputs import InputImages
from cvtrain.data.shapes.detection import ensure_shapes_detection, shapes_coco_paths, shapes_voc_root
from cvtrain.data.shapes.scenes import SHAPE_CLASSES
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.data.voc.detection import VOCDetection
from cvtrain.metrics.coco import COCO_METRICS, COCOEvaluator
from cvtrain.metrics.detection import CombinedEvaluator
from cvtrain.models.detection import build_torchvision_detector
from cvtrain.tasks.detection import DetectionTask
from cvtrain.tasks.detection_outputs import DetectionOutputs
from tests.conftest import block_picture, write_oriented

EVAL = detection_transforms(
    type("Aug", (), {"hflip": 0.0, "scale_range": None, "photometric": False, "mean": [0.5] * 3})(),
    train=False,
)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("shapes")
    return ensure_shapes_detection(cache, image_size=64, train_images=2, val_images=10, seed=5)


@pytest.fixture(scope="module")
def voc_val(shapes_dir: Path) -> VOCDetection:
    return VOCDetection(
        root=shapes_voc_root(shapes_dir),
        years=[2007],
        split="val",
        transforms=EVAL,
        class_names=SHAPE_CLASSES,
    )


@pytest.fixture(scope="module")
def coco_val(shapes_dir: Path) -> COCODetection:
    ann_file, image_dir = shapes_coco_paths(shapes_dir, "val")
    return COCODetection(
        ann_file=ann_file, image_dir=image_dir, keep_empty=False, train=False, transforms=EVAL
    )


def task() -> DetectionTask:
    return DetectionTask(class_names=list(SHAPE_CLASSES), score_threshold=0.5)


def outputs() -> DetectionOutputs:
    return DetectionOutputs(class_names=list(SHAPE_CLASSES), score_threshold=0.5)


def noisy_predictions(dataset, seed: int) -> list[tuple[Batch, list[dict[str, torch.Tensor]]]]:
    """Per image: every object found with jittered boxes, some missed, plus false positives; varied scores."""
    rng = np.random.default_rng(seed)
    batches = []
    for index in range(len(dataset)):
        _, target, meta = dataset[index]
        boxes = target["boxes"].as_subclass(torch.Tensor).double().numpy()
        labels = target["labels"].numpy()
        keep = rng.random(len(boxes)) > 0.2
        boxes = boxes[keep] + rng.normal(0, 2.0, size=(int(keep.sum()), 4))
        labels = labels[keep]
        extra = rng.uniform(0, 40, size=(3, 2))
        false_boxes = np.concatenate([extra, extra + rng.uniform(5, 20, size=(3, 2))], axis=1)
        all_boxes = np.concatenate([boxes, false_boxes]).clip(0, 64)
        all_labels = np.concatenate([labels, rng.integers(0, 5, size=3)])
        prediction = {
            "boxes": torch.tensor(all_boxes, dtype=torch.float32),
            "scores": torch.tensor(rng.uniform(0.05, 1.0, size=len(all_labels)), dtype=torch.float32),
            "labels": torch.tensor(all_labels, dtype=torch.int64),
        }
        batches.append((Batch(images=[], targets=[], meta=[meta]), [prediction]))
    return batches


class StubDetector(nn.Module):
    """Stands in for a detector: fixed losses in training, one fixed box per image in eval."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, images, targets=None):
        if self.training:
            self.seen_targets = targets
            return {"loss_a": self.weight * 2.0, "loss_b": self.weight * 0.5}
        return [
            {
                "boxes": torch.tensor([[4.0, 2.0, 10.0, 8.0]]),
                "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]),
            }
            for _ in images
        ]


# ------------------------------------------------------------------------------------------ collate / steps


def test_collate_keeps_variable_sizes_and_separates_unreadable_images() -> None:
    def sample(h: int, w: int, n: int):
        boxes = tv_tensors.BoundingBoxes(
            torch.ones(n, 4) * torch.tensor([0, 0, 4, 4]), format="XYXY", canvas_size=(h, w)
        )
        target = {"boxes": boxes, "labels": torch.zeros(n, dtype=torch.int64)}
        return tv_tensors.Image(torch.rand(3, h, w)), target, {"image_id": f"{h}x{w}", "orig_size": (h, w)}

    bad = BadSample(path="broken.jpg", reason="truncated")
    batch = task().collate([sample(20, 30, 2), bad, sample(25, 15, 0)])
    assert [tuple(i.shape) for i in batch.images] == [(3, 20, 30), (3, 25, 15)] and batch.bad == [bad]
    assert all(type(i) is torch.Tensor for i in batch.images)
    assert [m["input_size"] for m in batch.meta] == [(20, 30), (25, 15)]
    assert [len(t["labels"]) for t in batch.targets] == [2, 0] and type(
        batch.targets[0]["boxes"]
    ) is torch.Tensor


def test_collate_of_predict_inputs_has_no_targets(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    batch = task().collate([InputImages(tmp_path, transform=EVAL)[0]])
    assert (
        batch.targets == [None] and batch.images[0].dtype == torch.uint8
    )  # float on the device, in the task


def test_training_step_returns_the_sum_and_every_named_loss() -> None:
    model = StubDetector().train()
    batch = Batch(
        images=[torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)],
        targets=[{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}],
        meta=[{}],
    )
    losses = task().training_step(model, batch)
    assert list(losses) == ["loss", "loss_a", "loss_b"] and float(losses["loss"].detach()) == 2.5
    losses["loss"].backward()
    assert float(model.weight.grad) == 2.5 and model.seen_targets is batch.targets


def test_a_tiny_faster_rcnn_step_gives_its_four_losses(voc_val: VOCDetection) -> None:
    torch.manual_seed(0)
    model = build_torchvision_detector(
        arch="faster_rcnn", num_classes=5, backbone="mobilenet_v3_large_320_fpn", min_size=64, max_size=64
    ).train()
    losses = {
        k: v.detach()
        for k, v in task().training_step(model, task().collate([voc_val[0], voc_val[1]])).items()
    }
    assert set(losses) == {"loss", "loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    assert torch.isfinite(losses["loss"]) and float(losses["loss"]) == pytest.approx(
        sum(float(v) for k, v in losses.items() if k != "loss"), rel=1e-6
    )


def test_predict_maps_boxes_back_to_the_original_pixels() -> None:
    model = StubDetector().eval()
    meta = [{"orig_size": (20, 24), "input_size": (10, 8)}, {"orig_size": (10, 8), "input_size": (10, 8)}]
    batch = Batch(
        images=[torch.randint(0, 256, (3, 10, 8), dtype=torch.uint8)] * 2, targets=[None, None], meta=meta
    )
    resized, same = task().predict(model, batch)
    assert resized["boxes"].tolist() == [[12.0, 4.0, 30.0, 16.0]]  # x * 24/8, y * 20/10
    assert same["boxes"].tolist() == [[4.0, 2.0, 10.0, 8.0]] and same["labels"].tolist() == [1]


# ---------------------------------------------------------------------------------------------- evaluators


def test_the_evaluator_and_headline_follow_the_dataset(
    voc_val: VOCDetection, coco_val: COCODetection
) -> None:
    t = task()
    assert t.monitor(voc_val) == "voc_map" and t.monitor(coco_val) == "map"  # known before any evaluator
    assert monitor_mode(t.monitor(voc_val)) == monitor_mode(t.monitor(coco_val)) == "max"
    voc = t.evaluator(voc_val)
    assert isinstance(voc, CombinedEvaluator)
    for batch, predictions in noisy_predictions(voc_val, seed=1):
        voc.update(batch, predictions)
    metrics = voc.compute()
    assert set(metrics) == {"voc_map", "voc07_map", *COCO_METRICS} and 0.2 < metrics["voc_map"] < 1.0
    Console(file=io.StringIO()).print(voc.report())  # the VOC per-class and COCO per-category tables render
    coco = t.evaluator(coco_val)
    assert isinstance(coco, CombinedEvaluator) and t.monitor(voc_val) == "voc_map"  # no side effect
    assert isinstance(coco.evaluators[0], COCOEvaluator)


def test_merging_two_ranks_equals_one_pass(voc_val: VOCDetection) -> None:
    whole, first, second = (task().evaluator(voc_val) for _ in range(3))
    for i, (batch, predictions) in enumerate(noisy_predictions(voc_val, seed=2)):
        whole.update(batch, predictions)
        (first if i % 2 else second).update(batch, predictions)
    first.merge(second)
    assert first.compute() == whole.compute()


def test_saved_coco_predictions_rescore_with_pycocotools_to_the_same_numbers(
    coco_val: COCODetection, tmp_path: Path
) -> None:
    t = task()
    evaluator, sink = t.evaluator(coco_val), outputs().results_writer(coco_val, tmp_path)
    for batch, predictions in noisy_predictions(coco_val, seed=3):
        evaluator.update(batch, predictions)
        sink.update(batch, predictions)
    sink.write()
    ours = evaluator.compute()
    results = json.loads((tmp_path / "predictions.json").read_text())
    assert {r["category_id"] for r in results} <= {2, 3, 7, 11, 12}  # the file's own (non-contiguous) ids
    assert all(isinstance(r["image_id"], int) for r in results)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_val.ann_file))
        official = COCOeval(gt, gt.loadRes(str(tmp_path / "predictions.json")), iouType="bbox")
        official.evaluate()
        official.accumulate()
        official.summarize()
    assert [ours[k] for k in COCO_METRICS] == [float(v) for v in official.stats]
    assert ours["map"] > 0.1


def test_saved_voc_predictions_use_stems_and_one_based_classes_and_rescore_alike(
    voc_val: VOCDetection, tmp_path: Path
) -> None:
    t = task()
    evaluator, sink = t.evaluator(voc_val), outputs().results_writer(voc_val, tmp_path)
    for batch, predictions in noisy_predictions(voc_val, seed=4):
        evaluator.update(batch, predictions)
        sink.update(batch, predictions)
    sink.write()
    records = sink.records
    assert records[0]["image_id"] == voc_val.records[0].image_id and 1 <= records[0]["category_id"] <= 5
    rescored = score_results(voc_val, tmp_path / "predictions.json")
    assert rescored == evaluator.compute()


# ------------------------------------------------------------------------------------------------- predict


def test_predict_pictures_have_the_boxes_drawn_and_the_json_is_filtered(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    for path in (inputs / "a.png", inputs / "sub" / "a.png"):
        Image.fromarray(np.full((30, 40, 3), 128, dtype=np.uint8)).save(path)
    images = InputImages(inputs, transform=EVAL)
    t = task()
    sink = outputs().predict_writer(tmp_path / "run")
    batch = t.collate([images[0], images[1]])
    prediction = {
        "boxes": torch.tensor([[5.0, 5.0, 20.0, 25.0], [1.0, 1.0, 3.0, 3.0]]),
        "scores": torch.tensor([0.4, 0.8]),
        "labels": torch.tensor([2, 4]),
    }
    sink.update(batch, [prediction, {k: v[:0] for k, v in prediction.items()}])
    sink.write()
    records = sink.records
    assert records == json.loads((tmp_path / "run" / "predictions.json").read_text())
    first, second = records
    assert [d["class_name"] for d in first["detections"]] == ["cross"]  # 0.4 < predict.score_threshold=0.5
    assert first["detections"][0]["box"] == [1.0, 1.0, 3.0, 3.0] and second["detections"] == []
    drawn = [Path(r["drawn"]) for r in records]
    assert [p.name for p in drawn] == ["a.png", "a_1.png"]  # same stem in two folders: both kept
    pixels = np.asarray(Image.open(drawn[0]))
    assert pixels.shape == (30, 40, 3) and (pixels != 128).any()  # a box was drawn
    assert (np.asarray(Image.open(drawn[1])) == 128).all()  # nothing to draw
    out = io.StringIO()
    Console(file=out, width=160).print(outputs().show_predictions(records, tmp_path / "run"))
    assert "a.png" in out.getvalue() and "cross (0.80)" in out.getvalue()


def test_predict_reads_and_draws_a_phone_photo_as_displayed(tmp_path: Path) -> None:
    shown = block_picture(32, 48)  # 32 wide, 48 high; stored 48 x 32 with EXIF orientation 6
    path = write_oriented(tmp_path / "inputs" / "phone.jpg", shown, 6)
    sample = InputImages(path, transform=EVAL)[0]
    assert sample[2]["orig_size"] == (48, 32)
    t = task()
    sink = outputs().predict_writer(tmp_path / "run")
    box = {
        "boxes": torch.tensor([[2.0, 30.0, 20.0, 46.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }
    sink.update(t.collate([sample]), [box])
    drawn = np.asarray(Image.open(sink.records[0]["drawn"])).astype(int)
    assert drawn.shape == (48, 32, 3)
    assert np.abs(drawn[:14] - shown[:14]).max() <= 2  # above the box and its label: the displayed picture
    assert (
        np.abs(drawn[30:46, 2:20] - shown[30:46, 2:20]).max() > 50
    )  # the box is drawn where it was predicted
