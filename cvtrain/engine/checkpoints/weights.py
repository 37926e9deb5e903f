"""A checkpoint's weights into the network a command built: the weights it evaluated, and the message that names
what differs when they do not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvtrain.errors import CvtrainError


def load_weights(
    model: nn.Module,
    weights: dict[str, Any],
    *,
    path: str | Path,
    state: dict[str, Any],
    model_config: dict[str, Any],
) -> None:
    """Load a checkpoint's weights into `model`, built from this run's `model_config` (plain values). Weights of
    another network are a `CvtrainError` naming the checkpoint, the model it was trained as, the settings of this
    run that differ from it, and the first tensor that differs."""
    expected = model.state_dict()
    difference = _first_difference(expected, weights)
    if difference is None:
        model.load_state_dict(weights)
        return
    saved = dict((state.get("config") or {}).get("model") or {})
    trained = f"model={saved.get('name', '?')}"
    changed = [k for k, v in model_config.items() if k in saved and saved[k] != v and k != "_target_"]
    if "name" in changed:
        arch = f" (model.arch={saved['arch']})" if "arch" in saved else ""
        raise CvtrainError(
            f"checkpoint {path} was trained as {trained}{arch}; the override model={model_config['name']} builds "
            f"a different network ({difference}). Drop the override or pass a checkpoint of "
            f"{model_config['name']}."
        )
    if changed:
        was = " ".join(f"model.{k}={saved[k]}" for k in changed)
        now = " ".join(f"model.{k}={model_config[k]}" for k in changed)
        raise CvtrainError(
            f"checkpoint {path} was trained as {trained} with {was}; the override {now} builds a different "
            f"network ({difference}). Drop the override or pass a checkpoint trained with it."
        )
    raise CvtrainError(
        f"the weights of checkpoint {path} do not fit the network {trained} builds here ({difference}): the "
        "checkpoint was written by a different version of the model's code, or edited; pass a checkpoint "
        "written by cvtrain fit with this model."
    )


def _first_difference(expected: dict[str, torch.Tensor], given: dict[str, Any]) -> str | None:
    """The first tensor a checkpoint's weights lack, add, or hold in another shape, and how many differ."""
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    reshaped = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if not (missing or extra or reshaped):
        return None
    if reshaped:
        k = reshaped[0]
        first = f"{k} is {list(given[k].shape)} in the checkpoint, {list(expected[k].shape)} in this network"
    elif missing:
        first = f"this network has {missing[0]}, which the checkpoint lacks"
    else:
        first = f"the checkpoint has {extra[0]}, which this network lacks"
    count = len(missing) + len(extra) + len(reshaped)
    return first + (f"; {count} tensors differ" if count > 1 else "")


def evaluated_weights(state: dict[str, Any]) -> dict[str, Any]:
    """The weights a checkpointed run evaluated: the EMA average when training kept one, else the raw weights."""
    ema = state.get("ema")
    return ema["module"] if ema else state["model"]
