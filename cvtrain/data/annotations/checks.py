"""One validation for every annotation format (COCO json, VOC XML, YOLO txt, ...), and `data.on_bad_annotation`.

A loader reports each defect it finds to an `AnnotationLog` as an `AnnotationProblem` (file, where in it, what is
wrong, what to do) in one of three ways:

- `error(...)`: always stops the run (`DataError`): defects that make a whole file or split unusable or its meaning
  ambiguous (json that does not parse, duplicate image or annotation ids, an image entry without its size, a
  `file_name` that leaves the image folder, a split with no usable sample);
- `bad(...)`: follows the policy. `error` stops on it naming the file; `skip` drops that annotation (or that image,
  for a VOC XML that does not parse), counts it and lists it (`bad_annotations.txt` in the run directory);
- `clipped(...)`: a box that only sticks out of its image is usable: it is clamped to the image and listed.

`collect=True` (`cvtrain data check`) never raises for a policy defect: it records what `fit` would do.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cvtrain.errors import DataError

log = logging.getLogger(__name__)

LISTING = "bad_annotations.txt"  # in the run directory, one problem per line, as bad_images.txt for images
POLICIES = ("error", "skip")
SHOWN = 20  # problems quoted in the warning; the listing has them all


@dataclass(frozen=True)
class AnnotationProblem:
    file: str  # the annotation file: a json, an XML, a label txt
    where: str  # inside it: "annotation id 7 (image id 3)", "object 2 (dog)", "line 4", "images[2]"
    what: str  # what is wrong, with the offending value
    fix: str  # what the user can do
    action: str  # what the loader did: "error", "skipped" or "clipped"

    def message(self) -> str:
        return f"{self.file}: {self.where}: {self.what}; {self.fix}"

    def row(self) -> str:
        """One tab-separated line of the listing: action, file, where, what, fix."""
        return "\t".join((self.action, self.file, self.where, self.what, self.fix))


class AnnotationLog:
    """Collects the annotation problems of one dataset build under one policy (see the module docstring)."""

    def __init__(self, policy: str = "error", *, collect: bool = False):
        if policy not in POLICIES:
            raise DataError(f"data.on_bad_annotation={policy!r}: choose one of {', '.join(POLICIES)}")
        self.policy = str(policy)
        self.collect = collect
        self.problems: list[AnnotationProblem] = []
        self._seen: set[tuple[str, str, str]] = set()  # a file read by two splits is listed once

    def error(self, file: str | Path, where: str, what: str, fix: str) -> NoReturn:
        """A defect that always stops the run."""
        problem = AnnotationProblem(str(file), where, what, fix, "error")
        raise DataError(problem.message())

    def bad(self, file: str | Path, where: str, what: str, fix: str) -> None:
        """A defect of one annotation (or image): an error under policy `error`, else skipped and listed.

        Returns only when the caller is to skip it."""
        action = "error" if self.policy == "error" else "skipped"
        problem = AnnotationProblem(str(file), where, what, fix, action)
        if action == "error" and not self.collect:
            raise DataError(
                f"{problem.message()}\n(or run with data.on_bad_annotation=skip to skip, count and list such "
                f"annotations in {LISTING})"
            )
        self._add(problem)

    def clipped(self, file: str | Path, where: str, what: str) -> None:
        """A box that sticks out of its image: kept, clamped to the image, and listed."""
        fix = "nothing needed (it is clamped to the image); correct the box to silence this"
        self._add(AnnotationProblem(str(file), where, what, fix, "clipped"))

    def _add(self, problem: AnnotationProblem) -> None:
        key = (problem.file, problem.where, problem.what)
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(problem)

    def count(self, action: str | None = None) -> int:
        return sum(1 for p in self.problems if action is None or p.action == action)

    def summary(self, since: int = 0) -> str:
        """E.g. "2 skipped, 1 clipped" for the problems recorded after the first `since` ("" when none)."""
        counts = Counter(p.action for p in self.problems[since:])
        return ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))

    def report(self, source: str | Path, since: int = 0) -> None:
        """One warning listing the problems recorded after the first `since` (a loader calls it once per file
        or split it read)."""
        new = self.problems[since:]
        if not new:
            return
        shown = "\n  ".join(f"[{p.action}] {p.message()}" for p in new[:SHOWN])
        more = f"\n  ... and {len(new) - SHOWN} more" if len(new) > SHOWN else ""
        log.warning(
            "%s: annotation problems: %s (all listed in %s of the run directory):\n  %s%s",
            source,
            self.summary(since),
            LISTING,
            shown,
            more,
        )


def write_listing(problems: Sequence[AnnotationProblem], run_dir: str | Path) -> Path | None:
    """Write `bad_annotations.txt` (header + one row per problem) into `run_dir`; None when there is none."""
    if not problems:
        return None
    path = Path(run_dir) / LISTING
    lines = ["# action\tfile\twhere\twhat\tfix", *(p.row() for p in problems)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -------------------------------------------------------------------------------------------- shared checks


def check_box(
    checks: AnnotationLog,
    box: Sequence[Any],
    *,
    width: float,
    height: float,
    file: str | Path,
    where: str,
    fix: str,
) -> tuple[float, float, float, float] | None:
    """An XYXY box read from a file (continuous 0-based pixels) as floats, or None when it is skipped.

    Not numbers, not finite, zero or negative width or height, or wholly outside the image: a policy defect.
    Partly outside the image: usable, listed as clipped (the training target is clamped to the image)."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        checks.bad(file, where, f"box {list(box)!r} is not four numbers", fix)
        return None
    xyxy = (x0, y0, x1, y1)
    if not all(math.isfinite(v) for v in xyxy):
        checks.bad(file, where, f"box XYXY {list(xyxy)} has non-finite coordinates", fix)
    elif x1 <= x0 or y1 <= y0:
        checks.bad(file, where, f"empty box XYXY {list(xyxy)} (zero or negative width or height)", fix)
    elif x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
        checks.bad(file, where, f"box XYXY {list(xyxy)} lies outside the {width:g}x{height:g} image", fix)
    else:
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            checks.clipped(file, where, f"box XYXY {list(xyxy)} sticks out of the {width:g}x{height:g} image")
        return xyxy
    return None


def image_path(
    checks: AnnotationLog, image_dir: str | Path, file_name: Any, *, file: str | Path, where: str
) -> Path:
    """`image_dir / file_name`, refused (always an error) when the name is absolute or leaves the folder.

    Checked on the names alone (symlinks inside the folder may point anywhere: datasets are often linked)."""
    name = str(file_name)
    inside = os.path.normpath(os.path.join(os.sep + "root", name))
    if not name or os.path.isabs(name) or not inside.startswith(os.sep + "root" + os.sep):
        checks.error(
            file,
            where,
            f"file_name {name!r} is not a path inside the image folder {image_dir}",
            "file names must be relative to the image folder, without '..': fix the file, or set the image "
            "folder to the common parent of the images",
        )
    return Path(image_dir) / name
