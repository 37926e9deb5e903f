"""The recorders a run writes to, built from the `logger` group, behind one object (`Recorders`) that passes every
call on to each of them: the engine talks to it through the `Recorder` protocol only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate

from cvtrain.contracts.recorder import Recorder
from cvtrain.engine import distributed
from cvtrain.engine.recorders.console import ConsoleRecorder
from cvtrain.engine.reporting import NO_PROGRESS, TrainProgress


class Recorders:
    """Every chosen recorder, in the order of the config (see the module doc); none on ranks other than 0."""

    def __init__(self, recorders: list[Recorder]):
        self.recorders = recorders

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        for recorder in self.recorders:
            recorder.scalars(prefix, values, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        for recorder in self.recorders:
            recorder.image(tag, image, step)

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        for recorder in self.recorders:
            recorder.hyperparameters(config, metrics)

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close()

    @property
    def progress(self) -> TrainProgress:
        """The console recorder's progress bar (`logger.console`), or one that shows nothing."""
        consoles = [r for r in self.recorders if isinstance(r, ConsoleRecorder)]
        return consoles[0].progress if consoles else NO_PROGRESS


def build_recorders(logger: Mapping[str, Any], run_dir: Path) -> Recorders:
    """The recorders of `logger` (the typed `cfg.logger`: name -> schema with `_target_`), each built with
    `run_dir=` and its options; on rank 0 only."""
    if not distributed.is_main():
        return Recorders([])
    return Recorders([instantiate(options, run_dir=Path(run_dir)) for options in logger.values()])


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys: {"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
