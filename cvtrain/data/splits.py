"""What a data builder returns, and the one dispatch from a `data` config to its format's builder.

Every `conf/data/*.yaml` names its builder with `_target_` (e.g. `cvtrain.data.voc.detection.build_voc`). A builder is

    build_xxx(cfg, *, aug, task, need_train, require_images=True) -> DataSplits

with `cfg` the typed data config, `aug` the typed `AugConfig` and `task` the model's task (`data=shapes` gives
the form the model needs). `need_train=False` builds the validation split only; `require_images=False` (scoring
a predictions file) lets the detection formats read annotations without their pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_method
from torch.utils.data import Dataset

from cvtrain.data.annotations.checks import AnnotationProblem
from cvtrain.errors import ConfigError


@dataclass
class DataSplits:
    train: Dataset | None  # None when only evaluating
    val: Dataset
    class_names: list[str]
    # what the annotation checks skipped or clipped (`data.on_bad_annotation`), listed in the run directory
    problems: list[AnnotationProblem] = field(default_factory=list)


# What to do when the model's task is not one the dataset provides, by the dataset's (first) task.
_REMEDIES = {
    "classification": "Pick a {task} dataset (e.g. data=shapes) or a classification model.",
    "detection": "Pick a detection model (e.g. model=faster_rcnn) or a dataset for the task.",
    "segmentation": "Pick a segmentation model (e.g. model=fcn) or a dataset for the task.",
}


def require_task(fmt: str, task: str, supported: tuple[str, ...]) -> None:
    """A `ConfigError` unless data=`fmt`, which provides the `supported` tasks, has a form for `task`."""
    if task not in supported:
        remedy = _REMEDIES[supported[0]].format(task=task)
        raise ConfigError(
            f"data={fmt} provides {' / '.join(supported)} data but the model is a {task} model. {remedy}"
        )


def build_data(cfg: Any, aug: Any, *, task: str, need_train: bool, require_images: bool = True) -> DataSplits:
    """The datasets of `cfg` (a typed data config), built by the function its `_target_` names."""
    try:
        builder = get_method(cfg._target_)
    except Exception as e:  # Hydra wraps the import failure; say which key is wrong
        raise ConfigError(
            f"data._target_={cfg._target_!r} (data={cfg.format}) does not name an importable builder: {e}"
        ) from e
    return builder(cfg, aug=aug, task=task, need_train=need_train, require_images=require_images)
