"""`cvtrain fit|eval|predict [overrides]`: pick the subcommand, then hand the rest of the line to Hydra."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_method
from omegaconf import DictConfig
from rich.text import Text

from cvtrain.cli_help import print_help
from cvtrain.config import register_schemas
from cvtrain.config.compose import CONF_DIR
from cvtrain.engine import sweep
from cvtrain.engine.reporting import console, write_json
from cvtrain.errors import CvtrainError
from cvtrain.overrides import check_overrides, checkpoint_group_choices, missing_arguments, sweeper_overrides


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: its one-line help and its module's `run_<name>(cfg, run_dir, overrides)`, which returns
    what the run found (a dict) or nothing. Adding a subcommand is that module and one entry below."""

    help: str
    run: str  # the function, by import path
    reads_checkpoint: bool = False  # composes with the group choices stored in its ckpt=
    # results.json in the run directory: fit's always (a sweep re-run reuses a finished job by it), bench's in a
    # sweep (the summary ranks its jobs by it)
    results_json: Literal["always", "in a sweep", "never"] = "never"


SUBCOMMANDS = {
    "fit": Subcommand(
        "train, evaluating every trainer.eval_every epochs; keeps checkpoints/best.ckpt and last.ckpt",
        "cvtrain.commands.fit.run_fit",
        results_json="always",
    ),
    "eval": Subcommand(
        "re-evaluate a checkpoint (ckpt=PATH), or score a saved predictions file (predictions=FILE)",
        "cvtrain.commands.evaluate.run_eval",
        reads_checkpoint=True,
    ),
    "predict": Subcommand(
        "run a checkpoint on images (ckpt=PATH inputs=FILE_OR_DIR) and write what it sees",
        "cvtrain.commands.predict.run_predict",
        reads_checkpoint=True,
    ),
    "data check": Subcommand(
        "read every image and annotation of data=... as fit would, report counts and problems",
        "cvtrain.commands.data_check.run_data_check",
    ),
    "export": Subcommand(
        "write a checkpoint's model as ONNX or TorchScript (ckpt=PATH format=onnx|torchscript), parity-checked",
        "cvtrain.commands.export.run_export",
        reads_checkpoint=True,
    ),
    "bench": Subcommand(
        "time the input pipeline and the training step as fit runs them (bench.steps=N); writes bench.json",
        "cvtrain.commands.bench.run_bench",
        results_json="in a sweep",
    ),
}
log = logging.getLogger("cvtrain")


def _job(command: str, cfg: DictConfig, injected: list[str]) -> float | None:
    """One run; in a sweep, returns the monitored metric to the sweeper (None when the job failed)."""
    from cvtrain.engine import distributed  # here, not at the top: `cvtrain --help` does not load torch

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    # What the user typed: not the command, nor the group choices taken from the checkpoint.
    overrides = [o for o in hc.overrides.task if not o.startswith("command=") and o not in injected]
    multirun = hc.mode == RunMode.MULTIRUN
    if multirun and command == "fit":
        earlier = sweep.finished_results(run_dir, overrides)
        if earlier is not None:  # a sweep re-run into the same hydra.sweep.dir: this job already finished
            log.info(
                "reused %s: finished earlier with these overrides, not retrained", run_dir / "results.json"
            )
            sweep.mark_reused(run_dir, earlier)
            return sweep.objective(earlier)
    subcommand = SUBCOMMANDS[command.replace("_", " ")]
    try:
        results = get_method(subcommand.run)(cfg, run_dir, overrides)
        if subcommand.results_json == "always" or (multirun and subcommand.results_json == "in a sweep"):
            write_json(run_dir / "results.json", {**results, "overrides": overrides})
        if command == "fit":
            return sweep.objective(results)
    except Exception as e:
        if not multirun and not isinstance(e, CvtrainError):
            raise  # a bug: keep the traceback
        log.error("%s", e, exc_info=not isinstance(e, CvtrainError))
        if not multirun:
            raise SystemExit(1) from None
        # In a sweep one failing job is recorded and the others still run (see cvtrain/engine/sweep.py).
        error = str(e).splitlines()[0] if str(e) else type(e).__name__
        write_json(run_dir / "results.json", {"status": "failed", "error": error, "overrides": overrides})
        from cvtrain.engine.signals import Stopped

        if isinstance(e, Stopped):
            raise sweep.SweepInterrupted(str(e)) from None
        if hc.sweeper.get("_target_") == sweep.OPTUNA_SWEEPER:
            raise sweep.JobFailed(error) from None  # a failed trial (Hydra's basic sweeper would stop here)
    finally:
        distributed.teardown()
    return None


# Hydra flags that take a value (`--info` takes one only from its list of choices).
_VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--shell-completion",
    "-sc",
}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def hydra_argv(args: list[str], *extra_overrides: str) -> list[str]:
    """Flags first, then overrides: Hydra's argparse rejects overrides on both sides of a flag
    (`cvtrain fit -m a=1,2` after we add `command=fit`)."""
    flags, overrides = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            takes_value = arg in _VALUE_FLAGS or (
                arg in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in _INFO_CHOICES
            )
            if takes_value and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return [*flags, *extra_overrides, *overrides]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print_help({name: s.help for name, s in SUBCOMMANDS.items()})
        return
    if argv[0] in ("-V", "--version"):
        print(f"cvtrain {version('cvtrain')}")
        return
    command, rest = argv[0], argv[1:]
    if argv[:2] == ["data", "check"]:  # the one two-word command; Hydra's name for it is data_check
        command, rest = "data_check", argv[2:]
    if command.replace("_", " ") not in SUBCOMMANDS:
        console.print(
            Text.assemble(
                (f"cvtrain: unknown command {command!r}", "red"), f"; choose one of: {', '.join(SUBCOMMANDS)}"
            )
        )
        raise SystemExit(2)
    register_schemas()
    injected = (
        checkpoint_group_choices(rest) if SUBCOMMANDS[command.replace("_", " ")].reads_checkpoint else []
    )
    rest = [*injected, *rest]
    problem = check_overrides(rest, command) or missing_arguments(rest, command)
    multirun = any(a in ("-m", "--multirun") for a in rest)
    if problem is None and multirun:
        try:
            rest += sweeper_overrides(rest, command)  # e.g. Optuna's direction from the monitored metric
        except CvtrainError as e:
            problem = str(e)
    if problem:
        console.print(f"cvtrain {command}: {problem}", style="red", highlight=False)
        raise SystemExit(2)
    sys.argv = [f"cvtrain-{command}", *hydra_argv(rest, f"command={command}")]
    app = hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")(
        lambda cfg: _job(command, cfg, injected)
    )
    if not multirun:
        app()
        return
    _sweep(app, command)


def _sweep(app: Callable[[], None], command: str) -> None:
    """Run a sweep; its summary table closes it even when the sweeper or launcher raised (Optuna when every trial
    failed, submitit when a job was killed) or a job was stopped by a signal, then a one-line reason instead of
    Hydra's traceback."""
    sweep.LAST_SWEEP.clear()
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    # Hydra then re-raises what ended the sweep, to us, instead of printing its traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    stopped = None
    try:
        app()
    except sweep.SweepInterrupted as e:
        stopped = (
            f"{e}\n  to continue the sweep, run the same command with hydra.sweep.dir={sweep.LAST_SWEEP.get('dir')} "
            "trainer.resume=auto: finished jobs are reused, the others continue from their last.ckpt"
        )
    except Exception as e:
        stopped = sweep.why_stopped(e)
        if stopped is None:
            raise
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
        sweep.close_sweep()
    if stopped:
        console.print(f"cvtrain {command}: the sweep stopped: {stopped}", style="red", highlight=False)
        raise SystemExit(1)
    if command == "fit" and sweep.LAST_SWEEP.get("failed"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
