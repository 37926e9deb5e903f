"""`build_model(cfg, num_classes=...)`: the model a `conf/model/*.yaml` names.

Each model YAML names its builder with `_target_` (a real import path); the builder is called with `num_classes`
and the schema's builder options as keyword arguments. Adding a model is one YAML, one schema (if its options are
new) and one function.
"""

from __future__ import annotations

from typing import Any, Protocol

from hydra.utils import get_method
from torch import nn

from cvtrain.errors import ConfigError


class ModelSpec(Protocol):
    """What `build_model` reads of a model config (`cvtrain.config.model.ModelConfig` provides it)."""

    _target_: str
    name: str

    def builder_options(self) -> dict[str, Any]: ...


def build_model(cfg: ModelSpec, *, num_classes: int) -> nn.Module:
    try:
        builder = get_method(cfg._target_)
    except (ImportError, ValueError) as e:
        raise ConfigError(
            f"model._target_={cfg._target_!r} (model={cfg.name}) does not import: {e}. It must be the import path "
            "of a builder such as cvtrain.models.classification.build_classifier."
        ) from None
    model = builder(num_classes=num_classes, **cfg.builder_options())
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model._target_={cfg._target_!r} returned a {type(model).__name__}, not an nn.Module."
        )
    return model
