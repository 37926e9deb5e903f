"""The allowed range of every numeric config value, declared on its schema field, and the one check of a composed
config against them (run by the early command-line check and again by `to_typed`, so values from YAML files,
experiments and checkpoints are checked as well as the command line's).

    batch_size: int = bounded(32, ge=1)
    momentum: float = bounded(0.9, ge=0, lt=1)
    crop_scale: list[float] = bounded(factory=lambda: [0.08, 1.0], gt=0, le=1)   # every element
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cvtrain.errors import ConfigError

_RANGE = "cvtrain.range"


@dataclass(frozen=True)
class Range:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    hint: str = ""  # what to do instead, where a value out of range is a likely mistake

    def allows(self, value: float) -> bool:
        return (
            not math.isnan(value)
            and (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def __str__(self) -> str:
        low = (
            f"[{_num(self.ge)}"
            if self.ge is not None
            else f"({_num(self.gt)}"
            if self.gt is not None
            else None
        )
        high = (
            f"{_num(self.le)}]"
            if self.le is not None
            else f"{_num(self.lt)})"
            if self.lt is not None
            else None
        )
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {low[1:]}" if low[0] == "[" else f"> {low[1:]}"
        assert high, "a Range needs a bound"
        return f"<= {high[:-1]}" if high[-1] == "]" else f"< {high[:-1]}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    hint: str = "",
) -> Any:
    """A dataclass field whose value (each element, for a list) must lie in the range; None is always allowed
    where the field's type allows it. A subclass that only changes the default keeps its base's range."""
    metadata = {_RANGE: Range(ge=ge, gt=gt, le=le, lt=lt, hint=hint)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def range_of(schema: type, name: str) -> Range | None:
    """The range declared for field `name` of `schema`, or by the nearest base class that declares the field."""
    for cls in schema.__mro__:
        declared = getattr(cls, "__dataclass_fields__", {}).get(name)
        if declared is not None and _RANGE in declared.metadata:
            return declared.metadata[_RANGE]
    return None


def check_ranges(cfg: DictConfig) -> None:
    """Raise a `ConfigError` naming the first value outside its declared range: key, value and the range.
    Values left unset (`???`) are skipped: `to_typed` names those."""
    for key, value, allowed in _bounded_values(cfg, ""):
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if item is None or isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if not allowed.allows(item):
                where = f"{key}[{i}]" if isinstance(value, list) else key
                shown = value if isinstance(value, list) else item
                hint = f" {allowed.hint}" if allowed.hint else ""
                raise ConfigError(f"{key}={shown} is out of range: {where} must be {allowed}.{hint}")


def _bounded_values(node: DictConfig, prefix: str) -> Iterator[tuple[str, Any, Range]]:
    schema = OmegaConf.get_type(node)
    names = [str(k) for k in node]
    for name in names:
        key = f"{prefix}{name}"
        if OmegaConf.is_missing(node, name):
            continue
        child = node._get_node(name)
        if isinstance(child, DictConfig):
            if not child._is_none():
                yield from _bounded_values(child, f"{key}.")
            continue
        allowed = range_of(schema, name) if dataclasses.is_dataclass(schema) else None
        if allowed is None:
            continue
        value = node[name]  # resolves an interpolation
        yield key, OmegaConf.to_container(value) if isinstance(value, ListConfig) else value, allowed
