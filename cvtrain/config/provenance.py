"""Where each value of a run's recipe came from: the command line, the chosen experiment, the model's recipe (the
groups its YAML's defaults list chooses), or cvtrain's defaults. Read from what Hydra composed: the overrides typed
(`hydra.overrides.task`), the group choices, and the raw YAML of the chosen model and experiment."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cvtrain.config.compose import override_key

COMMAND_LINE = "command line"
EXPERIMENT = "experiment"
MODEL_RECIPE = "model recipe"
DEFAULT = "default"


@dataclass(frozen=True)
class Provenance:
    command_line: frozenset[str]  # keys and groups the command line sets: "optim.lr", "optim"
    experiment_keys: frozenset[str]  # dotted keys the experiment's YAML sets
    experiment_groups: frozenset[str]  # groups its defaults list overrides
    model_groups: frozenset[str]  # groups the model's defaults list overrides: its recipe

    @classmethod
    def of(
        cls, overrides: Iterable[str], experiment: ConfigFile | None, model: ConfigFile | None
    ) -> Provenance:
        return cls(
            command_line=frozenset(override_key(o) for o in overrides),
            experiment_keys=frozenset(experiment.keys if experiment else ()),
            experiment_groups=frozenset(experiment.groups if experiment else ()),
            model_groups=frozenset(model.groups if model else ()),
        )

    def source(self, *keys: str) -> str:
        """The source of the value of `keys`, the first naming its group (a value can follow others, e.g.
        aug.image_size follows data.image_size): the first that applies of command line, experiment, model recipe,
        default. A group's option chosen somewhere is the source of all its values not set elsewhere."""
        group = keys[0].split(".")[0]
        if any(key in self.command_line for key in keys) or group in self.command_line:
            return COMMAND_LINE
        if any(key in self.experiment_keys for key in keys) or group in self.experiment_groups:
            return EXPERIMENT
        if group in self.model_groups:
            return MODEL_RECIPE
        return DEFAULT


@dataclass(frozen=True)
class ConfigFile:
    """What one YAML of a config group sets: its dotted keys, and the groups its defaults list overrides."""

    keys: tuple[str, ...]
    groups: tuple[str, ...]


def dotted_keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from dotted_keys(value, f"{path}.")
        else:
            yield path


def config_file(config: DictConfig, defaults: Iterable[Any]) -> ConfigFile:
    """From a YAML loaded by Hydra's repository (`defaults`: its parsed defaults list)."""
    groups = [
        str(d.group).lstrip("/").split("@")[0]
        for d in defaults
        if getattr(d, "override", False) and getattr(d, "group", None)
    ]
    plain = OmegaConf.to_container(config, resolve=False)
    assert isinstance(plain, dict)
    return ConfigFile(keys=tuple(dotted_keys(plain)), groups=tuple(groups))


def of_this_run() -> Provenance | None:
    """The provenance of the Hydra run in progress (None outside one)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not GlobalHydra.instance().is_initialized():
        return None
    hc = HydraConfig.get()
    repository = GlobalHydra.instance().config_loader().repository  # type: ignore[attr-defined]

    def load(group: str) -> ConfigFile | None:
        choice = hc.runtime.choices.get(group)
        loaded = repository.load_config(f"{group}/{choice}") if choice else None
        return config_file(loaded.config, loaded.defaults_list or ()) if loaded else None

    overrides = [o for o in hc.overrides.task if not o.startswith("command=")]
    return Provenance.of(overrides, experiment=load("experiment"), model=load("model"))
