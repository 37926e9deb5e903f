"""Semantic segmentation: per-pixel cross-entropy (void = 255 ignored), argmax label maps, mIoU.

Batches hold uint8 images, normalised on the device by `inputs` (`cvtrain/tasks/inputs.py`) in `training_step`
and `predict`. Training crops all have `aug.image_size`, so images stack into [B, 3, H, W] and masks into uint8
[B, H, W] (uint8 holds classes 0..254 and void 255 at an eighth of the int64 transfer). Evaluation runs at each
image's full resolution: a batch whose images differ in size keeps them as lists, and `predict` runs the model
once per group of equal-sized images. Padding them to a common size instead would let an image's prediction
depend on which other images share its batch (the padding changes what the network sees near the border), so
metrics would change with `data.eval_batch_size`; grouping keeps them identical to a one-image-at-a-time
evaluation, as torchvision's reference does, while equal-sized images (most of VOC) still share a forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cvtrain.contracts.batch import Batch, split_bad
from cvtrain.data.decoding.palette import IGNORE_INDEX
from cvtrain.errors import ConfigError
from cvtrain.metrics.segmentation import SegmentationEvaluator
from cvtrain.tasks.inputs import ImageInput

LabelMaps = torch.Tensor | list[torch.Tensor]


class SegmentationTask:
    name = "segmentation"
    headline = "miou"  # the metric it monitors on any data

    def __init__(
        self,
        *,
        class_names: Sequence[str],
        class_weights: Sequence[float] | None = None,
        aux_weight: float = 0.5,
        inputs: ImageInput | None = None,
    ) -> None:
        self.class_names = list(class_names)
        self.inputs = inputs or ImageInput()  # without mean / std: floats in [0, 1]
        self.aux_weight = float(aux_weight)
        self.class_weights: torch.Tensor | None = None
        self._weights_on_device: dict[torch.device, torch.Tensor] = {}
        if class_weights is not None:
            weights = [float(w) for w in class_weights]
            if len(weights) != len(self.class_names) or min(weights) < 0 or sum(weights) == 0:
                raise ConfigError(
                    f"model.class_weights has {len(weights)} values but the dataset has {len(self.class_names)} "
                    f"classes ({', '.join(self.class_names[:4])}, ...): give one non-negative weight per class, "
                    "background first, or null for equal weights"
                )
            self.class_weights = torch.tensor(weights, dtype=torch.float32)

    # ------------------------------------------------------------------------------------------------ batches
    def collate(self, samples: list[Any]) -> Batch:
        """Stack equal-sized samples, else keep lists (see the module doc). `cvtrain predict` inputs carry no
        mask (-1): their batch has `targets=None`."""
        good, bad = split_bad(samples)
        if not good:
            return Batch(images=torch.empty(0, dtype=torch.uint8), targets=None, meta=[], bad=bad)
        images, masks, meta = zip(*good, strict=True)
        same_size = len({tuple(image.shape) for image in images}) == 1
        targets: Any = None
        if all(isinstance(mask, torch.Tensor) for mask in masks):
            masks_u8 = [mask.to(torch.uint8) for mask in masks]
            targets = torch.stack(masks_u8) if same_size else masks_u8
        return Batch(
            images=torch.stack(images) if same_size else list(images),
            targets=targets,
            meta=list(meta),
            bad=bad,
        )

    # ------------------------------------------------------------------------------------------------ training
    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Cross-entropy of "out" plus `aux_weight` x that of "aux" when the model has an auxiliary head."""
        images, targets = self.inputs(batch.images, train=True), batch.targets
        if isinstance(images, list):  # equal crops make this rare; padding is harmless here (void is ignored)
            images, targets = _pad_to_common_size(images, targets)
        target = targets.long()
        outputs = model(images)
        main = self._cross_entropy(outputs["out"], target)
        aux = outputs.get("aux")
        if aux is None:
            return {"loss": main}
        aux_loss = self._cross_entropy(aux, target)
        return {"loss": main + self.aux_weight * aux_loss, "ce": main.detach(), "aux_ce": aux_loss.detach()}

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the task (its collate) pickled under spawn / forkserver: not the device copies
        return {**self.__dict__, "_weights_on_device": {}}

    def _class_weights_on(self, device: torch.device) -> torch.Tensor | None:
        """`class_weights` on `device`, copied there once: a copy from the host at every step would wait for the
        GPU to finish its queue."""
        if self.class_weights is None:
            return None
        if device not in self._weights_on_device:
            self._weights_on_device[device] = self.class_weights.to(device)
        return self._weights_on_device[device]

    def _cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the non-void pixels (weighted by class when `class_weights` is set), as
        `F.cross_entropy(..., ignore_index=255)`, but 0 rather than NaN for a batch that is all void."""
        weight = self._class_weights_on(logits.device)
        total = F.cross_entropy(
            logits.float(), target, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum"
        )
        valid = target != IGNORE_INDEX
        # No boolean indexing: it would wait for the GPU to know the result's size.
        count = valid.sum() if weight is None else (weight[torch.where(valid, target, 0)] * valid).sum()
        return total / count.clamp(min=torch.finfo(torch.float32).tiny)

    # ------------------------------------------------------------------------------------------------ inference
    def predict(self, model: nn.Module, batch: Batch) -> LabelMaps:
        """Label maps (argmax over classes) at each image's input size: [B, H, W], or a list when sizes differ."""
        images = self.inputs(batch.images)
        if isinstance(images, torch.Tensor):
            return model(images)["out"].argmax(dim=1)
        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            by_size[tuple(image.shape)].append(index)
        label_maps: list[torch.Tensor] = [torch.empty(0)] * len(images)
        for indices in by_size.values():
            logits = model(torch.stack([images[i] for i in indices]))["out"]
            for index, label_map in zip(indices, logits.argmax(dim=1), strict=True):
                label_maps[index] = label_map
        return label_maps

    def evaluator(self, dataset: Any) -> SegmentationEvaluator:
        return SegmentationEvaluator(
            num_classes=len(self.class_names), class_names=self.class_names, ignore_index=IGNORE_INDEX
        )

    def monitor(self, dataset: Any) -> str:
        return self.headline


def _pad_to_common_size(
    images: list[torch.Tensor], targets: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad normalised images at the bottom/right to the largest size with 0 (the mean), masks with void."""
    height = max(image.shape[-2] for image in images)
    width = max(image.shape[-1] for image in images)

    def pad(x: torch.Tensor, value: float) -> torch.Tensor:
        return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]), value=value)

    return torch.stack([pad(i, 0.0) for i in images]), torch.stack([pad(t, IGNORE_INDEX) for t in targets])
