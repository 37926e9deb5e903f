"""Checking the command line before Hydra runs anything, and the top-level `cvtrain --help`.

Hydra already rejects a misspelled key or an unknown option; this composes the config once up front (every value of
a sweep included) so the user gets one short message naming the bad key and the valid choices, and no traceback.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from cvtrain.config import GROUPS
from cvtrain.config.compose import CONF_DIR, compose_config, config_composer
from cvtrain.engine.reporting import console


def _config_overrides(args: list[str]) -> list[str]:
    """The `key=value` arguments of the command line, without Hydra's own flags and `hydra.*` settings."""
    return [a for a in args if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]


def _variants(overrides: list[str]) -> list[list[str]]:
    """One override list per value of every sweep (`a=1,2`), the other sweeps at their first value."""
    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    choices = []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.is_sweep_override():
            key = raw.split("=", 1)[0]
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([raw])
    base = [c[0] for c in choices]
    variants = [base]
    for i, values in enumerate(choices):
        variants += [base[:i] + [v] + base[i + 1 :] for v in values[1:]]
    return variants


def _valid_keys(cfg: DictConfig, full_key: str) -> str:
    parent = full_key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, DictConfig):
        return f"\n  valid keys of {parent or 'the config'}: {', '.join(str(k) for k in node)}"
    return ""


def _full_key(e: BaseException) -> str | None:
    for err in itertools.takewhile(lambda x: x is not None, _chain(e)):
        key = getattr(err, "full_key", None)
        if key:
            return str(key)
    return None


def _chain(e: BaseException | None):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def check_overrides(args: list[str], command: str) -> str | None:
    """Compose the config for every variant of the command line; return a readable problem, or None."""
    overrides = _config_overrides(args)
    with config_composer():
        try:
            variants = _variants(overrides)
        except Exception as e:  # a syntax error in an override
            return f"cannot parse the overrides: {e}"
        for variant in variants:
            try:
                cfg = compose_config(variant, command)
                OmegaConf.to_container(cfg.data, resolve=True)  # interpolations must resolve too
            except Exception as e:
                message = str(e).split("\nConfig search path:")[0].strip()
                key = _full_key(e)
                if key:
                    groups_only = [v for v in variant if v.split("=")[0] in GROUPS]
                    message += _valid_keys(compose_config(groups_only, command), key)
                return message
    return None


def _describe(yaml_file: Path) -> str:
    """The first comment line of an option's YAML (Hydra's `# @package` header skipped)."""
    for line in yaml_file.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
        if not line.startswith("#"):
            break
    return ""


def print_help(subcommands: dict[str, str]) -> None:
    console.print("[bold]cvtrain[/bold]: train and evaluate image classifiers, segmenters and detectors.\n")
    console.print(
        "usage: cvtrain {fit,eval,predict} [group=option ...] [key=value ...] [-m] [--cfg job]\n",
        markup=False,
    )
    commands = Table(title="commands", show_header=False, box=None)
    for name, text in subcommands.items():
        commands.add_row(f"[bold]{name}[/bold]", text)
    console.print(commands)
    groups = Table(title="config groups (group=option)", show_header=True, header_style="bold")
    groups.add_column("group")
    groups.add_column("option")
    groups.add_column("what it is")
    for group in (*GROUPS, "experiment"):
        label = "+experiment" if group == "experiment" else group  # experiments are added, not swapped
        for i, f in enumerate(sorted(Path(CONF_DIR, group).glob("*.yaml"))):
            groups.add_row(label if i == 0 else "", f.stem, _describe(f))
    console.print(groups)
    console.print(
        "\nExamples:\n  cvtrain fit model=resnet50 data=imagenet data.root=/data/imagenet optim.lr=0.2\n"
        "  cvtrain eval ckpt=outputs/fit/DATE/TIME/checkpoints/last.ckpt\n"
        "  cvtrain fit -m optim.lr=0.1,0.01 model=resnet18,alexnet\n"
        "  cvtrain fit --cfg job        # print the composed config\n"
        "  cvtrain fit --help           # Hydra's help: every key of the composed config"
    )


def checkpoint_group_choices(args: list[str]) -> list[str]:
    """For `eval` / `predict` with `ckpt=PATH`: `group=option` arguments that recompose the checkpoint's groups,
    so that key overrides (`data.root=...`) are checked against the schema the run was trained with. Groups the
    user names on the command line are left to them."""
    ckpt = next((a.split("=", 1)[1] for a in args if a.startswith("ckpt=")), None)
    if ckpt is None or not Path(ckpt).is_file():
        return []  # the command itself reports a missing checkpoint
    import torch

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return []
    given = {a.split("=", 1)[0].lstrip("+~") for a in args}
    return [f"{g}={o}" for g, o in (state.get("choices") or {}).items() if g not in given]
