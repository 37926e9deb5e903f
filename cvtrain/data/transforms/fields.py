"""Values of the `aug` group that several transform pipelines read the same way (one parser each)."""

from __future__ import annotations

from typing import Any

from cvtrain.errors import ConfigError


def scale_range(aug: Any) -> tuple[float, float] | None:
    """`aug.scale_range` as (low, high) with 0 < low <= high, or None when it is null.

    [1, 1] comes back as (1.0, 1.0): a pipeline that only scales treats it as off, one whose random affine also
    shifts passes it on (so the random draws stay those of a scale of 1).
    """
    value = aug.scale_range
    if value is None:
        return None
    values = [float(v) for v in value]
    if len(values) != 2 or not 0 < values[0] <= values[1]:
        raise ConfigError(
            f"aug.scale_range={list(value)} must be [low, high] with 0 < low <= high, e.g. [0.5, 2.0]"
        )
    return values[0], values[1]


def scaling(aug: Any) -> tuple[float, float] | None:
    """`scale_range(aug)`, or None when it does not scale (null or [1, 1])."""
    scale = scale_range(aug)
    return None if scale == (1.0, 1.0) else scale


def mean_fill(aug: Any) -> list[int]:
    """The uint8 colour that normalises to 0: padding that looks like 'no signal' to the network."""
    return [round(255 * float(m)) for m in aug.mean]
