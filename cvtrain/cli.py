"""`cvtrain fit|eval|predict [overrides]`: pick the subcommand, then hand the rest of the line to Hydra."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cvtrain.config import register_schemas
from cvtrain.config.compose import CONF_DIR
from cvtrain.engine import distributed
from cvtrain.engine.reporting import console, write_json
from cvtrain.errors import CvtrainError
from cvtrain.overrides import check_overrides, checkpoint_group_choices, print_help

SUBCOMMANDS = {
    "fit": "train, evaluating every trainer.eval_every epochs; keeps checkpoints/best.ckpt and last.ckpt",
    "eval": "re-evaluate a checkpoint (ckpt=PATH), or score a saved predictions file (predictions=FILE)",
    "predict": "run a checkpoint on images (ckpt=PATH inputs=FILE_OR_DIR) and write what it sees",
}
log = logging.getLogger("cvtrain")


def _job(command: str, cfg: DictConfig, injected: list[str]) -> None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    # What the user typed: not the command, nor the group choices taken from the checkpoint.
    overrides = [o for o in hc.overrides.task if not o.startswith("command=") and o not in injected]
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        if command == "fit":
            from cvtrain.commands.fit import run_fit

            run_fit(cfg, run_dir)
        elif command == "eval":
            from cvtrain.commands.evaluate import run_eval

            run_eval(cfg, run_dir, overrides)
        else:
            from cvtrain.commands.predict import run_predict

            run_predict(cfg, run_dir, overrides)
    except Exception as e:
        if not multirun and not isinstance(e, CvtrainError):
            raise  # a bug: keep the traceback
        log.error("%s", e, exc_info=not isinstance(e, CvtrainError))
        if not multirun:
            raise SystemExit(1) from None
        # In a sweep one failing job is recorded and the others still run (see cvtrain/engine/sweep.py).
        write_json(run_dir / "results.json", {"status": "failed", "error": str(e).splitlines()[0]})
    finally:
        distributed.teardown()


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
        print_help(SUBCOMMANDS)
        return
    command, rest = argv[0], argv[1:]
    if command not in SUBCOMMANDS:
        console.print(
            f"[red]cvtrain: unknown command {command!r}[/red]; choose one of: {', '.join(SUBCOMMANDS)}"
        )
        raise SystemExit(2)
    register_schemas()
    injected = checkpoint_group_choices(rest) if command in ("eval", "predict") else []
    rest = [*injected, *rest]
    problem = check_overrides(rest, command)
    if problem:
        console.print(f"[red]cvtrain {command}: {problem}[/red]", highlight=False)
        raise SystemExit(2)
    sys.argv = [f"cvtrain-{command}", *hydra_argv(rest, f"command={command}")]
    hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")(
        lambda cfg: _job(command, cfg, injected)
    )()
    if command == "fit" and any(a in ("-m", "--multirun") for a in rest):
        from cvtrain.engine.sweep import LAST_SWEEP

        if LAST_SWEEP.get("failed"):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
