"""SegmentationTask: batching at full resolution, the loss, size-grouped prediction and the prediction files."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import tv_tensors

from cvtrain.contracts.batch import BadSample
from cvtrain.data.decoding.palette import IGNORE_INDEX, VOC_PALETTE, read_index_png
from cvtrain.data.inputs import InputImages
from cvtrain.errors import ConfigError
from cvtrain.metrics.segmentation import SegmentationEvaluator
from cvtrain.tasks.segmentation import SegmentationTask
from cvtrain.tasks.segmentation_outputs import SegmentationOutputs, overlay, painted
from tests.conftest import gpu_waits, needs_gpu

CLASSES = ["background", "cat", "dog"]


class PixelClassifier(nn.Module):
    """A 1x1 convolution: each pixel's logits depend on that pixel only (and on nothing else in the batch)."""

    def __init__(self, num_classes: int = 3, aux: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.aux = nn.Conv2d(3, num_classes, 1) if aux else None
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append(tuple(x.shape))
        out = {"out": self.conv(x)}
        if self.aux is not None:
            out["aux"] = self.aux(x)
        return out


def sample(height: int, width: int, seed: int = 0, path: str = "img.jpg"):
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
    mask = torch.randint(0, 3, (height, width), generator=g)
    mask[0] = IGNORE_INDEX
    meta = {"image_id": Path(path).stem, "path": path, "orig_size": (height, width)}
    return image, tv_tensors.Mask(mask), meta


def test_collate_stacks_equal_sizes_and_keeps_lists_otherwise():
    task = SegmentationTask(class_names=CLASSES)
    bad = BadSample(path="x.jpg", reason="broken")
    batch = task.collate([sample(4, 5), bad, sample(4, 5, seed=1)])
    assert batch.images.shape == (2, 3, 4, 5) and batch.targets.shape == (2, 4, 5)
    assert batch.targets.dtype == torch.uint8 and int(batch.targets.max()) == IGNORE_INDEX
    assert batch.bad == [bad] and len(batch) == 2
    mixed = task.collate([sample(4, 5), sample(6, 3)])
    assert isinstance(mixed.images, list) and [tuple(t.shape) for t in mixed.targets] == [(4, 5), (6, 3)]
    empty = task.collate([bad])
    assert len(empty) == 0 and empty.bad == [bad]


def test_collate_of_unlabelled_predict_inputs_has_no_targets():
    task = SegmentationTask(class_names=CLASSES)
    image, _, meta = sample(4, 5)
    batch = task.collate([(image, -1, meta), (image, -1, meta)])
    assert batch.targets is None and batch.images.shape == (2, 3, 4, 5)


def test_loss_is_cross_entropy_ignoring_void_plus_weighted_aux():
    task = SegmentationTask(class_names=CLASSES, aux_weight=0.4)
    model = PixelClassifier(aux=True)
    batch = task.collate([sample(6, 7), sample(6, 7, seed=1)])
    losses = task.training_step(model, batch)
    target = batch.targets.long()
    inputs = task.inputs(batch.images)
    main = F.cross_entropy(model.conv(inputs), target, ignore_index=IGNORE_INDEX)
    aux = F.cross_entropy(model.aux(inputs), target, ignore_index=IGNORE_INDEX)
    assert torch.allclose(losses["ce"], main) and torch.allclose(losses["aux_ce"], aux)
    assert torch.allclose(losses["loss"], main + 0.4 * aux)
    losses["loss"].backward()
    assert model.aux.weight.grad is not None and model.conv.weight.grad is not None
    plain = SegmentationTask(class_names=CLASSES).training_step(PixelClassifier(), batch)
    assert set(plain) == {"loss"} and torch.allclose(plain["loss"], main)


def test_class_weights_weight_the_loss_and_must_match_the_classes():
    weights = [0.2, 1.0, 3.0]
    task = SegmentationTask(class_names=CLASSES, class_weights=weights)
    model = PixelClassifier()
    batch = task.collate([sample(6, 7)])
    expected = F.cross_entropy(
        model.conv(task.inputs(batch.images)),
        batch.targets.long(),
        weight=torch.tensor(weights),
        ignore_index=IGNORE_INDEX,
    )
    assert torch.allclose(task.training_step(model, batch)["loss"], expected)
    with pytest.raises(ConfigError, match="model.class_weights has 2 values but the dataset has 3 classes"):
        SegmentationTask(class_names=CLASSES, class_weights=[1.0, 2.0])


def test_a_pickled_task_leaves_its_device_copies_of_the_class_weights_behind():
    task = SegmentationTask(class_names=CLASSES, class_weights=[0.2, 1.0, 3.0])
    model = PixelClassifier()
    batch = task.collate([sample(6, 7)])
    loss = task.training_step(model, batch)["loss"]
    copy = pickle.loads(pickle.dumps(task))
    assert task._weights_on_device and not copy._weights_on_device
    assert torch.equal(copy.training_step(model, batch)["loss"], loss)


@needs_gpu
def test_a_weighted_training_step_on_the_gpu_never_waits_for_it():
    task = SegmentationTask(class_names=CLASSES, class_weights=[0.2, 1.0, 3.0], aux_weight=0.4)
    model = PixelClassifier(aux=True).cuda()
    batch = task.collate([sample(6, 7), sample(6, 7, seed=1)]).to(torch.device("cuda"))
    first = task.training_step(model, batch)["loss"]  # moves the class weights to the GPU, once
    with gpu_waits() as waits:
        again = task.training_step(model, batch)["loss"]
        again.backward()
    assert waits == [] and torch.equal(first, again)


def test_a_batch_of_only_void_pixels_gives_zero_loss_not_nan():
    task = SegmentationTask(class_names=CLASSES)
    image, mask, meta = sample(4, 4)
    mask[:] = IGNORE_INDEX
    loss = task.training_step(PixelClassifier(), task.collate([(image, mask, meta)]))["loss"]
    assert loss.item() == 0.0
    loss.backward()


def test_training_on_mixed_sizes_pads_with_void():
    task = SegmentationTask(class_names=CLASSES)
    model = PixelClassifier()
    small, large = sample(3, 4), sample(5, 6, seed=1)
    loss = task.training_step(model, task.collate([small, large]))["loss"]
    pixels = [
        (
            F.cross_entropy(
                model.conv(task.inputs(s[0])[None]), s[1][None], ignore_index=IGNORE_INDEX, reduction="sum"
            ),
            s[1],
        )
        for s in (small, large)
    ]
    count = sum(int((m != IGNORE_INDEX).sum()) for _, m in pixels)
    assert torch.allclose(loss, sum(total for total, _ in pixels) / count)


def test_predict_runs_one_forward_per_size_and_matches_one_image_at_a_time():
    task = SegmentationTask(class_names=CLASSES)
    model = PixelClassifier()
    samples = [sample(4, 5), sample(6, 3, seed=1), sample(4, 5, seed=2)]
    batch = task.collate(samples)
    with torch.no_grad():
        label_maps = task.predict(model, batch)
        alone = [model(task.inputs(s[0])[None])["out"].argmax(1)[0] for s in samples]
    assert model.calls[:2] == [(2, 3, 4, 5), (1, 3, 6, 3)]
    assert all(torch.equal(a, b) for a, b in zip(label_maps, alone, strict=True))
    evaluator = task.evaluator(None)
    assert isinstance(evaluator, SegmentationEvaluator) and evaluator.class_names == CLASSES
    evaluator.update(batch, label_maps)
    assert 0 <= evaluator.compute()["miou"] <= 1 and task.monitor(None) == "miou"


def test_eval_sink_writes_palette_pngs_at_the_original_size_named_by_stem(tmp_path):
    task = SegmentationTask(class_names=CLASSES)
    samples = [sample(4, 5, path="/data/2008_000001.jpg"), sample(6, 3, path="/data/2008_000002.jpg")]
    batch = task.collate(samples)
    predictions = [torch.full((4, 5), 1), torch.tensor([[0, 2, 2]] * 6)]
    sink = SegmentationOutputs(class_names=CLASSES).results_writer(dataset=None, out_dir=tmp_path)
    sink.update(batch, predictions)
    sink.write()
    records = sink.records
    first = read_index_png(tmp_path / "predictions" / "2008_000001.png")
    assert first.shape == (4, 5) and (first == 1).all()
    with Image.open(tmp_path / "predictions" / "2008_000002.png") as png:
        assert png.mode == "P" and png.size == (3, 6)
        assert np.array_equal(np.array(png.getpalette()[:9]).reshape(3, 3), VOC_PALETTE[:3])
    assert records[1]["class_fractions"] == {"background": pytest.approx(1 / 3), "dog": pytest.approx(2 / 3)}
    assert records[0]["mask"] == "predictions/2008_000001.png" and "overlay" not in records[0]
    assert json.loads((tmp_path / "predictions.json").read_text()) == records


def test_predict_sink_adds_overlays_and_keeps_repeated_stems_apart(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(np.full((6, 8, 3), 100, dtype=np.uint8)).save(tmp_path / "in" / folder / "x.png")
    inputs = InputImages(tmp_path / "in", transform=None)
    task = SegmentationTask(class_names=CLASSES)
    batch = task.collate([inputs[0], inputs[1]])
    label_map = torch.zeros(6, 8, dtype=torch.long)
    label_map[:, 4:] = 2
    outputs = SegmentationOutputs(class_names=CLASSES)
    sink = outputs.predict_writer(tmp_path / "out")
    sink.update(batch, torch.stack([label_map, label_map]))
    sink.write()
    records = sink.records
    assert [r["mask"] for r in records] == ["predictions/x.png", "predictions/x_1.png"]
    assert [r["overlay"] for r in records] == ["overlays/x.jpg", "overlays/x_1.jpg"]
    with Image.open(tmp_path / "out" / records[0]["overlay"]) as jpeg:
        overlay_pixels = np.asarray(jpeg)
    # the overlay, and below it a legend naming the class present; a tiny image is widened for the name
    assert overlay_pixels.shape[0] > 6 and overlay_pixels.shape[1] > 8
    assert (overlay_pixels[:6, 8:] > 200).all()  # white padding right of the image
    table = outputs.show_predictions(records, tmp_path / "out")
    assert table.row_count == 2


def test_overlay_paints_only_non_background_classes():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    label_map = np.array([[0, 1], [0, 2]])
    painted = overlay(image, label_map, alpha=0.5)
    assert (painted[:, 0] == 100).all()
    assert painted[0, 1].tolist() == [round(0.5 * 100 + 0.5 * c) for c in VOC_PALETTE[1]]


def test_painted_overlays_carry_a_legend_of_the_classes_present():
    image = np.full((40, 120, 3), 100, dtype=np.uint8)
    label_map = np.zeros((40, 120), dtype=np.uint8)
    label_map[:, 60:] = 2
    label_map[0, 0] = IGNORE_INDEX  # void: painted, and named "void"
    out = painted(image, label_map, CLASSES)
    assert out.shape[1] == 120 and out.shape[0] > 40
    np.testing.assert_array_equal(out[:40], overlay(image, label_map))
    legend = out[40:]
    assert (legend == VOC_PALETTE[2]).all(axis=2).sum() > 20  # the swatch of class 2
    assert not (legend == VOC_PALETTE[1]).all(axis=2).any()  # class 1 is absent: no swatch


def test_preview_shows_the_truth_next_to_the_prediction(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.full((30, 40, 3), 90, dtype=np.uint8)).save(path)
    task = SegmentationTask(class_names=CLASSES)
    mask = torch.zeros(30, 40, dtype=torch.uint8)
    mask[:, 20:] = 1
    batch = task.collate([(torch.zeros(3, 30, 40), mask, {"path": str(path), "orig_size": (30, 40)})])
    (preview,) = SegmentationOutputs(class_names=CLASSES).preview(batch, torch.full((1, 30, 40), 2), limit=4)
    truth, predicted = preview.panels
    assert truth.heading == "scene.png: truth" and predicted.heading == "predicted"
    assert truth.image.shape[1] == predicted.image.shape[1] == 256  # the longer side, at the preview size
    cat = overlay(np.full((1, 1, 3), 90, np.uint8), np.ones((1, 1), np.uint8))[0, 0]
    assert (truth.image[:192, 200] == cat).all() and (
        truth.image[:192, 50] == 90
    ).all()  # the right half is a cat
    assert truth.image.shape[0] > 192  # and the legend below names it
