"""Pretrained weights come only from the local torch hub cache: nothing is downloaded at run time.

`local_weights_state(weights)` returns the state dict of a torchvision `WeightsEnum` entry if its file is in
`torch.hub.get_dir()/checkpoints/`, and otherwise raises a `ConfigError` that names the file, the URL it comes
from and the exact path to put it at. `torchvision_weights_from_local_cache()` makes torchvision's own builders
load their weights that way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models

from cvtrain.errors import ConfigError


def hub_checkpoint_path(weights: WeightsEnum) -> Path:
    filename = os.path.basename(weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


class _Cached(Exception):
    """Raised in place of loading a file that `require_cached_weights` found in the cache."""


_only_checking = False  # set by require_cached_weights: find the file, load nothing
_replaced_by_checkpoint = False  # set by weights_replaced_by_checkpoint: read no file at all


def require_cached_weights(build: Callable[[], object]) -> None:
    """Run `build` (a model builder) on the meta device up to the first weights file it reads, and raise the
    missing file's ConfigError: the check a run makes before any work. A builder reads one file (torchvision's
    builders take the backbone's only without the whole model's); one that fails on the meta device for another
    reason is left to the real build to report."""
    global _only_checking
    if _replaced_by_checkpoint:  # a checkpoint's weights come instead: no file is read
        return
    _only_checking = True
    try:
        with torch.device("meta"):
            build()
    except (_Cached, ConfigError) as e:
        if isinstance(e, ConfigError):
            raise
    except Exception:  # noqa: BLE001 - the real build reports it
        pass
    finally:
        _only_checking = False


@contextmanager
def weights_replaced_by_checkpoint() -> Iterator[None]:
    """While active, a builder asked for pretrained weights gets a freshly initialised state of the same network
    instead of the file: eval, predict and export build the architecture those weights give (frozen batch norm in
    detection backbones) and then load the checkpoint's own weights over it, so they need no ImageNet file."""
    global _replaced_by_checkpoint
    _replaced_by_checkpoint = True
    try:
        yield
    finally:
        _replaced_by_checkpoint = False


def _initial_state(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """The state dict of the torchvision network `weights` are for, randomly initialised."""
    name = next(n for n in list_models() if get_model_weights(n) is type(weights))
    return get_model(name).state_dict()


def local_weights_state(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    if _replaced_by_checkpoint:
        return _initial_state(weights)
    path = hub_checkpoint_path(weights)
    if not path.is_file():
        raise ConfigError(
            f"the pretrained weights {path.name} ({weights}) are not in the torch hub cache and cvtrain "
            f"downloads nothing at run time: download {weights.url} to {path} (or set TORCH_HOME to a folder "
            "whose hub/checkpoints/ holds it), or train from random weights with "
            "model.pretrained_backbone=false (model.pretrained=false for a whole model's weights)."
        )
    if _only_checking:
        raise _Cached
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated download or a file that is not a state dict
        raise ConfigError(
            f"cannot load pretrained weights file {path}: {e}. Delete it and download it again."
        ) from e


def default_weights(model_name: str) -> WeightsEnum:
    """The torchvision `DEFAULT` weights entry of a model builder name (e.g. 'resnet50')."""
    return get_model_weights(model_name).DEFAULT


@contextmanager
def torchvision_weights_from_local_cache() -> Iterator[None]:
    """While active, every torchvision builder that loads weights reads them through `local_weights_state`
    (local file or a ConfigError saying where to put it) instead of downloading. The builders then make exactly
    the architecture they make for those weights (e.g. frozen batch norm in detection backbones)."""
    original = WeightsEnum.get_state_dict

    def from_local_cache(self: WeightsEnum, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return local_weights_state(self)

    WeightsEnum.get_state_dict = from_local_cache  # type: ignore[method-assign]
    try:
        yield
    finally:
        WeightsEnum.get_state_dict = original  # type: ignore[method-assign]
