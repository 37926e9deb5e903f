"""Checking, before Hydra sets a run up, that its run directory can be written: Hydra's own failures there (creating
the folder, opening the log file) are tracebacks ("Unable to configure handler 'file'"); this says it in one line
naming the folder and what to do, and exits 2."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cvtrain.engine.reporting import console


class RunDirCheck(Callback):
    """A Hydra callback (conf/config.yaml): a run's `hydra.run.dir`, or a sweep's `hydra.sweep.dir`."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check(config, config.hydra.sweep.dir, "hydra.sweep.dir")


def _check(config: DictConfig, folder: str, key: str) -> None:
    problem = run_dir_problem(Path(folder).absolute(), f"{config.hydra.job.name}.log", key)
    if problem:
        console.print(f"cvtrain {config.command}: {problem}", style="red", highlight=False)
        raise SystemExit(2)


def run_dir_problem(folder: Path, log_name: str, key: str) -> str | None:
    """Create `folder` and open its log file as Hydra will; what is wrong, or None. A log file the check created
    is removed: the check leaves nothing a refused run (a directory in use) should not have written."""
    log_file = folder / log_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        existed = log_file.exists()
        with log_file.open("a"):
            pass
        if not existed:
            log_file.unlink()
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            return (
                f"the run directory {folder} is too long a path for its file system ({e.strerror}): give a shorter "
                f"one with {key}=DIR"
            )
        where = f" ({e.filename})" if e.filename and str(e.filename) != str(folder) else ""
        return f"cannot write the run directory {folder}: {e.strerror}{where}; give a writable folder with {key}=DIR"
    return None
