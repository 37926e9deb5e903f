"""The one way cvtrain composes its config outside a Hydra run (the override pre-check, tests, tools)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@contextmanager
def config_composer() -> Iterator[None]:
    """Within this block `compose_config` may be called; Hydra's global state is cleared before and after."""
    from cvtrain.config import register_schemas

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()


def compose_config(overrides: list[str], command: str = "fit") -> DictConfig:
    """The composed (untyped) config for `cvtrain COMMAND OVERRIDES` (inside `config_composer()`)."""
    return compose(config_name="config", overrides=[*overrides, f"command={command}"])
