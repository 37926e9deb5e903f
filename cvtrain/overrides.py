"""Checking the command line before Hydra runs anything (`cli_help.py` prints the top-level `cvtrain --help`).

Hydra already rejects a misspelled key or an unknown option; this composes the config once up front (every value of
a sweep included) so the user gets one short message naming the bad key and the valid choices, and no traceback.
"""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, ValidationError

from cvtrain.config import CHECKPOINT_GROUPS, GROUPS
from cvtrain.config.compose import ConfigSource, compose_config, config_composer, override_key
from cvtrain.config.ranges import check_ranges
from cvtrain.contracts.monitor import monitor_mode
from cvtrain.engine.sweep import OPTUNA_SWEEPER
from cvtrain.errors import ConfigError


def _is_hydra(arg: str) -> bool:
    """`hydra.*` settings and `hydra/...` groups (`hydra/launcher=submitit_slurm`, `hydra/sweeper=optuna`)."""
    return arg.lstrip("+~").startswith("hydra")


def _config_overrides(args: list[str]) -> list[str]:
    """The `key=value` arguments of the command line, without Hydra's own flags."""
    return [a for a in args if "=" in a and not a.startswith("-")]


def _sweep_values(override: Override) -> list[str]:
    """The values a sweep is checked with: every choice (`a,b`, `choice(a,b)`, `glob(*)`), the first value of a
    `range(...)` and both ends of an `interval(...)` (Optuna's search spaces, `tag(log, interval(...))` too)."""
    value = override.value()
    if isinstance(value, IntervalSweep):
        return [str(value.start), str(value.end)]
    if isinstance(value, Glob):
        override.config_loader = GlobalHydra.instance().config_loader()
    values = override.sweep_string_iterator()
    return list(itertools.islice(values, 1) if override.is_range_sweep() else values)


def _variants(overrides: list[str]) -> list[list[str]]:
    """One override list per value of every sweep (`a=1,2`), the other sweeps at their first value. A sweep of
    a Hydra setting (`hydra.sweeper.params...`) is the sweeper's business and is left out."""
    parsed = OverridesParser.create().parse_overrides(overrides=overrides)
    choices = []
    for raw, o in zip(overrides, parsed, strict=True):
        if not o.is_sweep_override():
            choices.append([raw])
        elif not _is_hydra(raw):
            key = raw.split("=", 1)[0]
            values = _sweep_values(o)
            if not values:
                raise ValueError(f"{raw} sweeps over no values")
            choices.append([f"{key}={v}" for v in values])
    base = [c[0] for c in choices]
    variants = [base]
    for i, values in enumerate(choices):
        variants += [base[:i] + [v] + base[i + 1 :] for v in values[1:]]
    return variants


def _interval_hint(overrides: list[str], full_key: str) -> str:
    """Hydra reads `interval(1,5)` as floats: an integer key swept that way fails, and says how to fix it."""
    for raw, o in zip(overrides, OverridesParser.create().parse_overrides(overrides=overrides), strict=True):
        if isinstance(o.value(), IntervalSweep) and o.get_key_element().lstrip("+~") == full_key:
            return f"\n  {raw} samples real numbers; for whole numbers use range(LOW,HIGH) or choice(A,B,...)"
    return ""


def _valid_keys(cfg: DictConfig, full_key: str) -> str:
    parent, _, name = full_key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return ""
    keys = [str(k) for k in node]
    close = difflib.get_close_matches(name, keys, n=1)
    guess = f"\n  did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
    return f"{guess}\n  valid keys of {parent or 'the config'}: {', '.join(keys)}"


def _unknown_key(message: str, key: str) -> str:
    """Hydra's words for a key the config lacks, less its advice to add it with `+KEY=...`: a misspelled key
    (`trainer.epoch`) would only be added unused beside the real one."""
    if message.startswith(f"Could not override '{key}'"):
        return f"{key} is not a key of the config."
    return message


def _full_key(e: BaseException) -> str | None:
    for err in itertools.takewhile(lambda x: x is not None, _chain(e)):
        key = getattr(err, "full_key", None)
        if key:
            return str(key)
    return None


# OmegaConf's words for a value its schema type refuses, and what cvtrain says instead.
_TYPES = {
    "converted to Float": "not a number ({key} takes a number, e.g. 0.1).",
    "converted to Integer": "not a whole number ({key} takes an integer, e.g. 4).",
    "not a valid bool": "not true or false ({key} takes a boolean: true or false).",
}


def _wrong_type(e: BaseException) -> str | None:
    """`optim.lr=abc is not a number (...)` for a value the schema's type refuses (key, value, expected type)."""
    for err in _chain(e):
        key = getattr(err, "full_key", None)
        if isinstance(err, ValidationError) and key:
            for words, problem in _TYPES.items():
                if words in str(err):
                    return f"{key}={err.value} is {problem.format(key=key)}"  # type: ignore[attr-defined]
    return None


def _unresolvable(e: BaseException) -> str | None:
    """`trainer.epochs: ${oc.env:EPOCHS} reads the environment variable EPOCHS, which is not set; ...`"""
    for err in _chain(e):
        key = getattr(err, "full_key", None)
        if isinstance(err, InterpolationResolutionError) and key:
            found = re.search(r"Environment variable '([^']+)' not found", str(err))
            if found:
                return (
                    f"{key} reads the environment variable {found.group(1)}, which is not set: set it "
                    f"(export {found.group(1)}=...) or give {key}=VALUE."
                )
            return f"{key}: its interpolation does not resolve: {str(err).splitlines()[0]}"
    return None


def _chain(e: BaseException | None):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


# What each command cannot run without: (command, keys of which one must be given, what it says otherwise).
# Answered from the composed config before the command imports torch: in a second, not after a run's start.
NEEDS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "eval",
        ("ckpt", "predictions"),
        "give ckpt=PATH (a checkpoint), or predictions=FILE to score saved predictions.",
    ),
    ("predict", ("ckpt",), "give ckpt=PATH (a checkpoint) and inputs=IMAGE_OR_FOLDER."),
    ("predict", ("inputs",), "give ckpt=PATH (a checkpoint) and inputs=IMAGE_OR_FOLDER."),
    ("export", ("ckpt",), "give ckpt=PATH (a checkpoint), and format=onnx|torchscript (default onnx)."),
)


def missing_arguments(args: list[str], command: str) -> str | None:
    """What `command` says when the config of `args` (checked by `check_overrides`) lacks an argument it cannot run
    without (`NEEDS`), else None."""
    needs = [(keys, message) for name, keys, message in NEEDS if name == command]
    if not needs:
        return None
    source = ConfigSource.of(args)
    with config_composer(source):
        cfg = compose_config(_variants(_config_overrides(args))[0], command, source.config_name)
    for keys, message in needs:
        if all(cfg.get(key) is None for key in keys):
            return message
    return None


def check_overrides(args: list[str], command: str) -> str | None:
    """Compose the config for every variant of the command line; return a readable problem, or None."""
    overrides = _config_overrides(args)
    try:
        source = ConfigSource.of(args)
    except ConfigError as e:
        return str(e)
    with config_composer(source):
        try:
            variants = _variants(overrides)
        except Exception as e:  # a syntax error in an override
            return f"cannot parse the overrides: {e}"
        for variant in variants:
            try:
                cfg = compose_config(variant, command, source.config_name)
                OmegaConf.to_container(cfg, resolve=True)  # interpolations must resolve too
                check_ranges(cfg)
            except ConfigError as e:
                return str(e)
            except Exception as e:
                message = str(e).split("\nConfig search path:")[0].strip()
                key = _full_key(e)
                wrong_value = _wrong_type(e) or _unresolvable(e)
                if wrong_value:
                    return wrong_value + (_interval_hint(overrides, key) if key else "")
                if key:
                    message = _unknown_key(message, key)
                    groups_only = [v for v in variant if v.split("=")[0] in GROUPS]
                    message += _valid_keys(compose_config(groups_only, command, source.config_name), key)
                    message += _interval_hint(overrides, key)
                return message
    return None


def _monitored(cfg: DictConfig) -> str:
    """The metric a fit job returns to the sweeper: trainer.monitor, else its task's headline metric."""
    if cfg.trainer.monitor:
        return str(cfg.trainer.monitor)
    from cvtrain.tasks.classification import ClassificationTask
    from cvtrain.tasks.detection import DetectionTask
    from cvtrain.tasks.segmentation import SegmentationTask

    # A detector's headline follows its data (map, or voc_map for VOC): both improve upwards.
    headline = {
        "classification": ClassificationTask.headline,
        "segmentation": SegmentationTask.headline,
        "detection": DetectionTask.headline,
        "instance_segmentation": DetectionTask.headline,
    }
    return headline.get(str(cfg.model.task), "loss")


def sweeper_overrides(args: list[str], command: str) -> list[str]:
    """Settings cvtrain adds for Hydra's Optuna sweeper (after `check_overrides` passed), each unless the command
    line or a config sets it: `hydra.sweeper.direction` from the metric the jobs monitor (`top1_err` is minimised,
    `miou` and `map` maximised), and `hydra.sweeper.max_failure_rate=1.0` (a failed job is a failed trial and the
    sweep goes on, as in every cvtrain sweep; Optuna's default stops at the first). Raises ConfigError when the
    jobs of one sweep monitor metrics that improve in opposite directions."""
    if command != "fit":
        return []
    overrides = _config_overrides(args)
    given = {override_key(o) for o in overrides}
    source = ConfigSource.of(args)
    with config_composer(source):
        variants = _variants(overrides)
        # compose_config leaves Hydra's own settings out; the sweeper is one of them.
        sweeper = compose(
            config_name=source.config_name,
            overrides=[*variants[0], f"command={command}"],
            return_hydra_config=True,
        ).hydra.sweeper
        if sweeper.get("_target_") != OPTUNA_SWEEPER:
            return []
        added = []
        if "hydra.sweeper.max_failure_rate" not in given and sweeper.max_failure_rate == 0.0:
            added.append("hydra.sweeper.max_failure_rate=1.0")
        if "hydra.sweeper.direction" in given or str(sweeper.direction) != "Direction.minimize":
            return added  # a config chose the direction (Optuna's default is minimize)
        monitors = {_monitored(compose_config(v, command, source.config_name)) for v in variants}
    modes = {m: monitor_mode(m) for m in sorted(monitors)}
    if len(set(modes.values())) > 1:
        raise ConfigError(
            "the jobs of this Optuna sweep monitor metrics that improve in opposite directions ("
            + ", ".join(f"{m}: {mode}" for m, mode in modes.items())
            + "); set trainer.monitor=METRIC, or hydra.sweeper.direction=minimize|maximize"
        )
    direction = "minimize" if set(modes.values()) == {"min"} else "maximize"
    return [*added, f"hydra.sweeper.direction={direction}"]


def checkpoint_group_choices(args: list[str]) -> list[str]:
    """For `eval` / `predict` with `ckpt=PATH`: `group=option` arguments that recompose the checkpoint's groups,
    so that key overrides (`data.root=...`) are checked against the schema the run was trained with. Groups the
    user names on the command line are left to them."""
    ckpt = next((a.split("=", 1)[1] for a in args if a.startswith("ckpt=")), None)
    if ckpt is None or not Path(ckpt).is_file():
        return []  # the command itself reports a missing checkpoint
    from cvtrain.engine.checkpoints.reading import peek  # here: `cvtrain --help` does not load torch

    state = peek(ckpt) or {}
    given = {override_key(a) for a in args}
    choices = (state.get("choices") or {}).items()  # older checkpoints also hold the logger's
    return [f"{g}={o}" for g, o in choices if g in CHECKPOINT_GROUPS and g not in given]
