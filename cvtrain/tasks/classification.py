"""Image classification: cross-entropy on logits (label smoothing, MixUp / CutMix soft targets in training),
softmax probabilities as predictions, top-k metrics. Batches hold uint8 images; `training_step` and `predict`
normalise them on the device the batch is on (`cvtrain/tasks/inputs.py`), so training, `cvtrain eval` and
`cvtrain predict` see the same inputs."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvtrain.contracts.batch import Batch, split_bad, stack_images
from cvtrain.errors import ConfigError
from cvtrain.metrics.accuracy import AccuracyEvaluator
from cvtrain.tasks.inputs import ImageInput
from cvtrain.tasks.mixing import batch_mix


class ClassificationTask:
    name = "classification"
    headline = "top1_err"  # the metric it monitors on any data

    def __init__(
        self,
        *,
        class_names: list[str],
        inputs: ImageInput | None = None,
        label_smoothing: float = 0.0,
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing={label_smoothing} must be in [0, 1); 0.1 is usual.")
        self.class_names = class_names
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

    def monitor(self, dataset: Any) -> str:
        return self.headline
