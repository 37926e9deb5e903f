"""The Task contract: what differs between classification, segmentation and detection in training and scoring.

The engine only ever calls these methods; it knows nothing of labels, masks or boxes. None has a side effect on
the task, so they may be called in any order. Pictures, tables and prediction files are the task's
`PredictionOutputs` (`cvtrain/contracts/outputs.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from cvtrain.contracts.batch import Batch
from cvtrain.contracts.evaluator import Evaluator


class Task(Protocol):
    name: str

    def collate(self, samples: list[Any]) -> Batch: ...

    def training_step(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """Losses of one batch; always contains "loss", the sum that is back-propagated."""

    def predict(self, model: nn.Module, batch: Batch) -> Any:
        """Model outputs in the form the task's evaluator and sinks consume (model already in eval mode)."""

    def evaluator(self, dataset: Any) -> Evaluator: ...

    def monitor(self, dataset: Any) -> str:
        """The metric that picks best.ckpt and ranks sweep jobs when `dataset` is evaluated (one that
        `evaluator(dataset)` computes); whether lower or higher is better follows from its name
        (`cvtrain.contracts.monitor.monitor_mode`)."""
