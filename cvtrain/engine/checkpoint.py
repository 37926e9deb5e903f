"""Checkpoints: written atomically, loaded with `weights_only=True`.

A checkpoint holds everything needed to resume (model, optimizer, scheduler, scaler, EMA, epoch, step, RNG states)
and to re-evaluate without any other argument (the resolved config and the class names).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvtrain.errors import CvtrainError
from cvtrain.files import atomic_write


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write atomically and fsync'ed (`cvtrain.files.atomic_write`): a crash mid-write leaves the previous
    checkpoint intact, never a truncated one."""
    with atomic_write(path, fsync=True) as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CvtrainError(
            f"checkpoint {path} does not exist (give ckpt=PATH or trainer.resume=PATH to a .ckpt file)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CvtrainError(f"cannot read checkpoint {path}: {e}") from e
    for key in ("model", "config", "class_names"):
        if key not in state:
            raise CvtrainError(f"{path} is not a cvtrain checkpoint: it has no {key!r} entry.")
    return state


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0)
    )
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
