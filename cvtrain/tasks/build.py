"""The task follows from the model: `model.task` names it."""

from __future__ import annotations

from typing import Any

from cvtrain.errors import ConfigError
from cvtrain.tasks.base import Task
from cvtrain.tasks.classification import ClassificationTask


def build_task(model_cfg: Any, *, class_names: list[str], predict_cfg: Any | None = None) -> Task:
    if model_cfg.task == "classification":
        return ClassificationTask(class_names=class_names, topk=predict_cfg.topk if predict_cfg else 5)
    raise ConfigError(f"model.task={model_cfg.task!r} is not a known task.")
