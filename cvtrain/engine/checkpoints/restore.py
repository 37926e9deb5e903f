"""A checkpoint plus the command line's overrides -> what `eval`, `predict` and `export` need: the config it was
trained with (the overrides on top), its class names and mean image, and its weights for the network built from
that config. Also what `fit` stores so that this works: the schema of every config group."""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cvtrain.config import CHECKPOINT_GROUPS, Config, to_plain, to_typed
from cvtrain.config.compose import override_key
from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.weights import evaluated_weights, load_weights
from cvtrain.errors import ConfigError

NO_MEAN_IMAGE = (
    "aug.mean_image=true but the checkpoint holds no mean image (it was trained without it): "
    "evaluate it with aug.mean_image=false"
)


@dataclass(frozen=True)
class Restored:
    """A checkpoint read back for a command: `cfg.ckpt` is its path."""

    cfg: Config
    state: dict[str, Any]  # every entry as written (epoch, step, ...)
    class_names: list[str]
    mean_image: torch.Tensor | None  # aug.mean_image=true: the one it was trained with

    def load_weights(self, model: nn.Module) -> None:
        """The weights it evaluated (the EMA average when training kept one) into `model`, built from `cfg`;
        weights of another network are a `CvtrainError` naming the override that conflicts."""
        load_weights(
            model,
            evaluated_weights(self.state),
            path=self.cfg.ckpt,
            state=self.state,
            model_config=to_plain(self.cfg.model),
        )


def restore(raw_cfg: DictConfig, overrides: list[str]) -> Restored:
    """Read the checkpoint `raw_cfg.ckpt` and type its config with the user's `overrides` on top."""
    state = load_checkpoint(raw_cfg.ckpt)
    cfg = to_typed(_checkpoint_config(raw_cfg, overrides, state))
    return Restored(cfg, state, list(state["class_names"]), _mean_image(cfg, state))


def _mean_image(cfg: Config, state: dict[str, Any]) -> torch.Tensor | None:
    """The mean image a checkpoint was trained with, when `aug.mean_image=true`."""
    if not cfg.aug.mean_image:
        return None
    if state.get("mean_image") is None:
        raise ConfigError(NO_MEAN_IMAGE)
    return state["mean_image"]


def group_schemas(cfg: Config) -> dict[str, str]:
    """The schema dataclass of every group, by import path: a checkpoint's config is typed back with them."""
    return {g: _qualified(type(getattr(cfg, g))) for g in CHECKPOINT_GROUPS if is_dataclass(getattr(cfg, g))}


def _checkpoint_config(cfg: DictConfig, overrides: list[str], state: dict[str, Any]) -> DictConfig:
    """The checkpoint's config with the user's command-line overrides applied on top, still typed by the schema.

    A group the user names (`data=imagefolder`) keeps the freshly composed option; every other group takes the
    checkpoint's values, typed by the schema it was trained with, but `_target_` (and any field added since) from the
    option's current YAML; a
    key override (`data.root=DIR`) then wins, taken from `cfg` where it is already parsed. Command keys (ckpt,
    inputs, eval, predict) come from `cfg`.
    """
    saved, schemas, choices = state["config"], state.get("schemas", {}), state.get("choices") or {}
    keys = [override_key(o) for o in overrides]
    merged = cfg.copy()
    for group in CHECKPOINT_GROUPS:
        if group in keys or group not in saved:
            continue
        composed = merged[group]
        if group in schemas and schemas[group] != _qualified(OmegaConf.get_type(composed)):
            composed = OmegaConf.structured(get_class(schemas[group]))
        stored = dict(saved[group])
        if group in choices and OmegaConf.select(composed, "_target_"):
            # `cfg` recomposed the checkpoint's option (overrides.checkpoint_group_choices): its YAML names where
            # the builder lives now, which wins over the path stored when the code was elsewhere
            stored.pop("_target_", None)
        merged[group] = OmegaConf.merge(composed, stored)
    for key in keys:
        if key.split(".")[0] in CHECKPOINT_GROUPS and key not in CHECKPOINT_GROUPS:
            OmegaConf.update(merged, key, OmegaConf.select(cfg, key), merge=False)
    return merged


def _qualified(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
