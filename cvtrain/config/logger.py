"""Schemas of the `logger` group: one per recorder (`conf/logger/<name>.yaml`, packaged at `logger.<name>`).

The group is a list: `logger=[tensorboard,csv]` picks recorders, `logger=none` (or `logger=[]`) none. Each YAML
names its recorder with `_target_`; the recorder is built with `run_dir=` and every other field of its schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from cvtrain.config.registry import schema


@schema(
    "logger", "recorder"
)  # a recorder without options of its own (tensorboard, csv) needs no schema of its own
@dataclass
class RecorderConfig:
    _target_: str = MISSING  # the recorder: (run_dir=, **options) -> a cvtrain.contracts.recorder.Recorder


@schema("logger", "console")
@dataclass
class ConsoleConfig(RecorderConfig):
    # rich progress bars over an epoch's steps and an evaluation's batches (only on a terminal); fit, eval, predict
    progress: bool = True
