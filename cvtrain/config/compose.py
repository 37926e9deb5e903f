"""The one way cvtrain composes its config outside a Hydra run (the override pre-check, tests, tools), from the
same search path a Hydra run of that command line would use."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, version
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from cvtrain.errors import ConfigError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
_CLI = str(Path(__file__).resolve().parents[1] / "cli.py")  # Hydra resolves a relative --config-path from it


def override_key(override: str) -> str:
    """`+optim.lr=0.1` -> `optim.lr`; `optim=adamw` -> `optim`."""
    return override.split("=", 1)[0].lstrip("+~")


@dataclass(frozen=True)
class ConfigSource:
    """Where a Hydra run reads its config: conf/ (or `--config-path`), plus `--config-dir`, and the primary config
    `--config-name`. (`hydra.searchpath=[...]` overrides and search-path plugins Hydra's composition applies itself.)"""

    config_path: str = CONF_DIR
    config_dir: str | None = None
    config_name: str = "config"

    @classmethod
    def of(cls, args: list[str]) -> ConfigSource:
        """The source Hydra's own argument parser reads from a command line (its flags anywhere in it)."""
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                parsed = get_args_parser().parse_intermixed_args(args)
        except SystemExit:  # a malformed flag: Hydra says so when it parses the line itself
            return cls()
        if parsed.config_dir is not None and not os.path.isdir(parsed.config_dir):
            raise ConfigError(
                f"--config-dir {parsed.config_dir}: {os.path.abspath(parsed.config_dir)} is not a folder; give the "
                "folder that holds your config groups (e.g. myconf, with myconf/experiment/mine.yaml)"
            )
        return cls(
            config_path=parsed.config_path or CONF_DIR,
            config_dir=parsed.config_dir,
            config_name=parsed.config_name or "config",
        )


@contextmanager
def config_composer(source: ConfigSource = ConfigSource()) -> Iterator[None]:
    """Within this block `compose_config` may be called; Hydra's global state is cleared before and after."""
    from cvtrain.config import register_schemas

    register_schemas()
    version.setbase("1.3")
    GlobalHydra.instance().clear()
    # As Hydra's own entry point builds it (hydra/_internal/utils.py, _run_hydra).
    search_path = create_automatic_config_search_path(_CLI, None, source.config_path)
    if source.config_dir is not None:
        config_dir = f"file://{os.path.abspath(source.config_dir)}"
        search_path.prepend("command-line", config_dir, anchor=SearchPathQuery(provider="schema"))
    try:
        Hydra.create_main_hydra2(task_name="cvtrain", config_search_path=search_path)
        yield
    finally:
        GlobalHydra.instance().clear()


def compose_config(overrides: list[str], command: str = "fit", config_name: str = "config") -> DictConfig:
    """The composed (untyped) config for `cvtrain COMMAND OVERRIDES` (inside `config_composer()`)."""
    return compose(config_name=config_name, overrides=[*overrides, f"command={command}"])
