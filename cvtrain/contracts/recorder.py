"""What a run records, and to whom: the `Recorder` protocol every tracker implements (TensorBoard, the CSV logs,
the console; `conf/logger/<name>.yaml` names each with `_target_`).

The engine writes to one `Recorders` fan-out (cvtrain/engine/recorders/fanout.py), which passes each call on to
every recorder the config chose; it never knows which ones they are. Only rank 0 records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np


class Recorder(Protocol):
    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        """Numbers at optimizer step `step`. `prefix` "train": a logged step's losses, lr and images_per_s, or an
        epoch's `data_wait_share`; "val": one evaluation, its `epoch` and `step` (ints) and its metrics."""
        ...

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A uint8 RGB picture [H, W, 3] (the plots/ pictures, tagged `plots/<name>`)."""
        ...

    def hyperparameters(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Once, at the end of a run that finished: the resolved config, flat (`optim.lr` -> 0.1; values are
        numbers, strings, booleans, None or lists), with the final evaluation's metrics."""
        ...

    def close(self) -> None: ...
