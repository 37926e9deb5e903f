"""Top-k classification accuracy and error (the ImageNet headline is top-5 error)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator
from cvtrain.contracts.plots import ConfusionData, PlotData


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """How many samples have their label among the k highest scores, for each k (k capped at the class count)."""
    kmax = min(max(ks), scores.shape[1])
    hits = scores.topk(kmax, dim=1).indices == labels[:, None]
    return torch.stack([hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks])


class AccuracyEvaluator(Evaluator):
    """`top1_acc`, `top5_acc`, `top1_err`, `top5_err` and the mean cross-entropy `loss`.

    With fewer than 5 classes, top-5 is over all classes (so it is 1.0). Predictions are class probabilities
    [B, C] (what the classification task's `predict` returns). Counts stay on the device: no sync per batch.
    """

    def __init__(self, *, class_names: Sequence[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sums: torch.Tensor | None = None  # [correct top-1, correct top-5, summed loss]
        self.confusion: torch.Tensor | None = None  # [true class, top-1 class] counts

    def update(self, batch: Batch, predictions: Any) -> None:
        probs = predictions.float()
        labels = batch.targets
        # summed in float64: a sharded (DDP) evaluation adds the same terms in another order
        nll = -probs.gather(1, labels[:, None]).clamp_min(1e-12).log().double().sum()
        sums = torch.cat([topk_correct(probs, labels, (1, 5)).to(nll.dtype), nll[None]])
        self.sums = sums if self.sums is None else self.sums + sums
        n = probs.shape[1]
        confusion = torch.bincount(labels * n + probs.argmax(dim=1), minlength=n * n).reshape(n, n)
        self.confusion = confusion if self.confusion is None else self.confusion + confusion
        self.count += len(labels)

    def merge(self, other: Evaluator) -> None:
        assert isinstance(other, AccuracyEvaluator)
        if other.sums is not None:
            other_sums = other.sums.to(self.sums.device) if self.sums is not None else other.sums
            self.sums = other_sums if self.sums is None else self.sums + other_sums
        if other.confusion is not None:
            theirs = (
                other.confusion.to(self.confusion.device) if self.confusion is not None else other.confusion
            )
            self.confusion = theirs if self.confusion is None else self.confusion + theirs
        self.count += other.count

    def compute(self) -> dict[str, float]:
        n = max(1, self.count)
        correct1, correct5, loss = self.sums.tolist() if self.sums is not None else [0.0, 0.0, 0.0]
        top1, top5 = correct1 / n, correct5 / n
        return {
            "top1_acc": top1,
            "top5_acc": top5,
            "top1_err": 1 - top1,
            "top5_err": 1 - top5,
            "loss": loss / n,
        }

    def plot_data(self) -> PlotData:
        """The confusion matrix of the top-1 predictions (rows: true class)."""
        if self.confusion is None:
            return PlotData()
        counts = self.confusion.cpu().numpy()
        names = self.class_names or [str(c) for c in range(counts.shape[0])]
        return PlotData(confusion=ConfusionData(counts=counts, names=names, title="top-1 confusion"))
