"""Image classification: cross-entropy on logits (label smoothing, MixUp / CutMix soft targets in training),
softmax probabilities as predictions, top-k metrics. Batches hold uint8 images; `training_step` and `predict`
normalise them on the device the batch is on (`cvtrain/tasks/inputs.py`), so training, `cvtrain eval` and
`cvtrain predict` see the same inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.table import Table
from torch import nn

from cvtrain.contracts.batch import Batch, split_bad, stack_images
from cvtrain.contracts.monitor import MonitorMode
from cvtrain.contracts.monitor import monitor_mode as mode_of
from cvtrain.contracts.plots import Panel, Preview
from cvtrain.errors import ConfigError
from cvtrain.metrics.accuracy import AccuracyEvaluator
from cvtrain.tasks.inputs import ImageInput
from cvtrain.tasks.mixing import batch_mix
from cvtrain.tasks.previews import PREVIEW_SIDE, preview_canvas


class ClassificationTask:
    name = "classification"
    monitor = "top1_err"

    @property
    def monitor_mode(self) -> MonitorMode:
        return mode_of(self.monitor)

    def __init__(
        self,
        *,
        class_names: list[str],
        topk: int = 5,
        inputs: ImageInput | None = None,
        label_smoothing: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing={label_smoothing} must be in [0, 1); 0.1 is usual.")
        self.class_names = class_names
        self.topk = min(topk, len(class_names))
        self.inputs = inputs or ImageInput()  # without mean / std: floats in [0, 1]
        self.label_smoothing = float(label_smoothing)
        self.mix = batch_mix(mixup=mixup, cutmix=cutmix, num_classes=len(class_names))

    def collate(self, samples: list[Any]) -> Batch:
        good, bad = split_bad(samples)
        if not good:
            return Batch(
                images=torch.empty(0, dtype=torch.uint8),
                targets=torch.empty(0, dtype=torch.long),
                meta=[],
                bad=bad,
            )
        images, labels, meta = zip(*good, strict=True)
        return Batch(
            images=stack_images(list(images)), targets=torch.tensor(labels), meta=list(meta), bad=bad
        )

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        images, targets = self.inputs(batch.images, train=True), batch.targets
        if (
            self.mix is not None
        ):  # training only, on the floats: collate and predict (evaluation) see the batch as it is
            images, targets = self.mix(images, targets)  # targets become probabilities [B, classes]
        return {"loss": F.cross_entropy(model(images), targets, label_smoothing=self.label_smoothing)}

    def predict(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(self.inputs(batch.images)).float().softmax(dim=1)

    def evaluator(self, dataset: Any) -> AccuracyEvaluator:
        return AccuracyEvaluator(class_names=self.class_names)

    def preview(self, batch: Batch, predictions: torch.Tensor, limit: int) -> list[Preview]:
        """Each image headed "true class -> predicted class probability", green when right, red when wrong."""
        scores, top = predictions[:limit].max(dim=1)
        labels = batch.targets[:limit].tolist()
        previews = []
        for i, (label, score, best) in enumerate(zip(labels, scores.tolist(), top.tolist(), strict=True)):
            image, _ = preview_canvas(batch.meta[i], batch.images[i], side=PREVIEW_SIDE * 3 // 4)
            heading = f"{self.class_names[label]} -> {self.class_names[best]} {score:.2f}"
            previews.append(Preview((Panel(image, heading, ok=label == best),)))
        return previews

    def results_writer(self, dataset: Any, out_dir: Path) -> TopKWriter:
        return TopKWriter(Path(out_dir) / "predictions.json", k=self.topk, class_names=self.class_names)

    def predict_writer(self, out_dir: Path) -> TopKWriter:
        return TopKWriter(Path(out_dir) / "predictions.json", k=self.topk, class_names=self.class_names)

    def show_predictions(self, records: list[dict[str, Any]], out_dir: Path) -> Table:
        table = Table(title=f"top-{self.topk} predictions", show_header=True, header_style="bold")
        table.add_column("image")
        table.add_column("top classes (probability)")
        for r in records:
            ranked = ", ".join(
                f"{self.class_names[c]} ({s:.3f})" for c, s in zip(r["top5"], r["scores"], strict=True)
            )
            table.add_row(Path(r["path"]).name, ranked)
        return table


class TopKWriter:
    """predictions.json: one record per image, {"path", "label", "label_name", "top5": [class indices],
    "top5_names": [class names], "scores": [probs]}.

    "top5" holds min(5, number of classes) indices, best first; "label" is -1 and "label_name" null for images
    without a label.
    """

    def __init__(self, path: Path, k: int, class_names: list[str]):
        self.path = path
        self.k = k
        self.class_names = class_names
        self.records: list[dict[str, Any]] = []

    def update(self, batch: Batch, predictions: torch.Tensor) -> None:
        scores, indices = predictions.topk(self.k, dim=1)
        labels = batch.targets.tolist()
        for meta, label, idx, sc in zip(batch.meta, labels, indices.tolist(), scores.tolist(), strict=True):
            self.records.append(
                {
                    "path": meta["path"],
                    "label": int(label),
                    "label_name": self.class_names[label] if label >= 0 else None,
                    "top5": idx,
                    "top5_names": [self.class_names[c] for c in idx],
                    "scores": sc,
                }
            )

    def write(self) -> None:
        self.path.write_text(json.dumps(self.records, indent=1) + "\n")
