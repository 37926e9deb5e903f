"""The Ultralytics YOLO-txt layout: `data.yaml` and the per-image label files, read as Ultralytics reads them.

    DIR/data.yaml            path: .   train: images/train   val: images/val   names: [cat, dog] (or {0: cat, 1: dog})
    DIR/images/train/a.jpg   DIR/labels/train/a.txt: one `class cx cy w h` line per object, normalised to [0, 1]

A line of Ultralytics' segmentation datasets, `class x1 y1 x2 y2 ...` (a polygon of 3 or more normalised points),
is an object too: its outline is the instance mask (`model=mask_rcnn`) and its extent the box (every detector). The
two kinds of line may share a file; a box line is unusable where instance masks are needed.

`train` / `val` are relative to `path`, which is relative to the yaml's folder (absent: that folder); each is a
folder of images (searched recursively), a `.txt` list of image paths (relative ones from the list's folder), or a
list of those. An image's label file is its path with the last `/images/` replaced by `/labels/` and the
extension by `.txt`. No label file, or an empty one, is a background image. A line that cannot be used is reported
to the shared annotation checks (`data.on_bad_annotation`) by file and line; a box that only sticks out of the image
is clipped to it (and listed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cvtrain.data.annotations.checks import AnnotationLog, check_box
from cvtrain.data.decoding.images import is_image_file
from cvtrain.errors import DataError

# How far outside [0, 1] a normalised coordinate may be and still count as a rounding error (then clipped).
TOLERANCE = 0.01
LINE_FORMAT = (
    "`class cx cy w h` (class index; box centre, width, height in [0, 1]) or `class x1 y1 x2 y2 ...` (a polygon "
    "of 3 or more points in [0, 1])"
)


@dataclass
class Labels:
    """The usable objects of one label file: XYXY boxes in continuous 0-based pixels, clipped to the image, and
    each object's polygon in pixels (flat x1, y1, x2, y2, ...; None for a box line)."""

    classes: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    polygons: list[list[float] | None] = field(default_factory=list)

    def arrays(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes float64 [N, 4] clipped to the image, labels int64 [N])."""
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        boxes = np.clip(boxes, 0.0, np.array([width, height, width, height], dtype=np.float64))
        return boxes, np.asarray(self.classes, dtype=np.int64)


def parse_labels(
    path: Path,
    classes: dict[int, int],
    width: int,
    height: int,
    checks: AnnotationLog,
    *,
    masks: bool = False,
) -> Labels:
    """Read the label file of a `width` x `height` image (absent: a background image, no objects). Every unusable
    line goes to `checks` (`data.on_bad_annotation`). `classes` maps the file's class indices to the training
    labels (`YoloLayout.labels`). A box that only sticks out of the image is clipped. With
    `masks` (instance segmentation) a box line is unusable: only polygons give masks."""
    labels = Labels()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return labels
    except (OSError, UnicodeDecodeError) as e:
        checks.bad(path, "the file", f"cannot be read ({e})", "rewrite it as UTF-8 text, one object per line")
        return labels
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            _parse_line(labels, path, f"line {number}", line.split(), (classes, width, height, masks), checks)
    return labels


def _parse_line(
    labels: Labels,
    path: Path,
    where: str,
    fields: list[str],
    context: tuple[dict[int, int], int, int, bool],  # `parse_labels`' classes, width, height, masks
    checks: AnnotationLog,
) -> None:
    classes, width, height, masks = context
    text = " ".join(fields)

    def bad(what: str, fix: str = f"write it as {LINE_FORMAT}") -> None:
        checks.bad(path, where, what, fix)

    coordinates = len(fields) - 1
    if coordinates != 4 and coordinates % 2:
        return bad(f"{text!r} has {len(fields)} fields: {coordinates} coordinates, an odd number")
    if coordinates != 4 and coordinates < 6:
        return bad(f"{text!r} has {len(fields)} fields: too few for a box (5) or a polygon (7 or more)")
    try:
        values = [float(v) for v in fields]
    except ValueError:
        return bad(f"{text!r} has a field that is not a number")
    if not all(math.isfinite(v) for v in values):
        return bad(f"{text!r} has a non-finite number")
    cls, points = values[0], values[1:]
    if cls != int(cls) or int(cls) not in classes:
        return bad(
            f"class {fields[0]} is not a class index {_index_range(classes)}",
            f"use the index of the object's name in data.yaml `names` ({len(classes)} classes)",
        )
    if not all(-TOLERANCE <= v <= 1 + TOLERANCE for v in points):
        return bad(
            f"coordinates {' '.join(fields[1:])} are outside [0, 1]",
            "YOLO coordinates are normalised: divide each x by the image width and each y by its height",
        )
    if coordinates == 4:
        if masks:
            return bad(
                f"{text!r} is a box, but instance segmentation (model=mask_rcnn) needs each object's outline",
                "write it as a polygon `class x1 y1 x2 y2 ...`, or train a box-only model",
            )
        cx, cy, w, h = points
        polygon = None
        corners = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
    else:
        xs, ys = np.asarray(points[0::2]) * width, np.asarray(points[1::2]) * height
        # the shoelace formula: points on one line (or all the same) outline nothing
        if abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) < 1e-9:
            return bad(f"the polygon of {len(xs)} points encloses no area", "fix or delete the line")
        polygon = np.stack([xs.clip(0, width), ys.clip(0, height)], axis=1).ravel().tolist()
        corners = [xs.min(), ys.min(), xs.max(), ys.max()]
    # rounded to a millionth of a pixel: no float noise in the messages (36.2, not 36.199999999999996)
    box = check_box(
        checks,
        [round(float(v), 6) for v in corners],
        width=width,
        height=height,
        file=path,
        where=where,
        fix="fix or delete the line",
    )
    if box is not None:
        labels.classes.append(classes[int(cls)])
        labels.boxes.append(box)
        labels.polygons.append(polygon)


def _index_range(classes: dict[int, int]) -> str:
    """ "0..79", or for a names map with gaps "of data.yaml `names` (80 of 1..90)"."""
    low, high = min(classes), max(classes)
    if high - low + 1 == len(classes):
        return f"{low}..{high}"
    return f"of data.yaml `names` ({len(classes)} of {low}..{high})"


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `/images/` of the path becomes `/labels/`, the extension `.txt`."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(labels.join(str(image).rsplit(images, 1))).with_suffix(".txt")


# ------------------------------------------------------------------------------------------------- data.yaml


@dataclass(frozen=True)
class YoloLayout:
    yaml_file: Path
    base: Path  # `path`, resolved: the dataset root every split is relative to
    class_names: list[str]
    labels: dict[int, int]  # the class index of the label files -> the training label (0.. in index order)
    skip_unlabelled: (
        bool  # `skip_if_label_file_missing: true`: an image without a label file is not in the split
    )
    sources: dict[str, list[Path]]  # "train" / "val" -> folders or .txt lists of images


def read_data_yaml(yaml_file: Path) -> YoloLayout:
    """Read and check `data.yaml`; every problem is a `DataError` naming the file and the key."""
    if not yaml_file.is_file():
        raise DataError(
            f"{yaml_file} does not exist: data=yolo_txt needs data.root=DIR holding data.yaml (keys path, train, "
            "val, names) with images/{train,val}/ and labels/{train,val}/ beside it (the Ultralytics layout)"
        )
    try:
        content = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{yaml_file} is not readable YAML: {e}") from e
    if not isinstance(content, dict):
        raise DataError(f"{yaml_file}: expected a mapping with keys path, train, val, names")
    index = _class_names(content.get("names"), yaml_file)
    if content.get("nc") is not None and content["nc"] != len(index):
        raise DataError(f"{yaml_file}: nc is {content['nc']} but `names` lists {len(index)} classes")
    base = yaml_file.parent / str(content.get("path") or ".")
    sources = {split: _sources(content.get(split), split, base, yaml_file) for split in ("train", "val")}
    return YoloLayout(
        yaml_file=yaml_file,
        base=base,
        class_names=list(index.values()),
        labels={cls: label for label, cls in enumerate(index)},
        skip_unlabelled=bool(content.get("skip_if_label_file_missing", False)),
        sources=sources,
    )


def _class_names(names: Any, yaml_file: Path) -> dict[int, str]:
    """The name of each class index, in index order. A map's indices may skip numbers (LightlyTrain's COCO
    exports keep COCO's category ids 1..90); the training labels are then 0.. in index order."""
    if isinstance(names, list) and names:
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict) and names:
        try:
            index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            index = {}
        if len(index) == len(names) and min(index) >= 0:
            return dict(sorted(index.items()))
        raise DataError(f"{yaml_file}: the keys of `names` must be class indices (whole numbers from 0)")
    raise DataError(
        f"{yaml_file}: `names` must list the class names (a list, or a map from class index to name)"
    )


def _sources(value: Any, split: str, base: Path, yaml_file: Path) -> list[Path]:
    if not value:
        raise DataError(
            f"{yaml_file}: `{split}` is missing: give the {split} images folder, relative to `path`"
        )
    paths = []
    for entry in value if isinstance(value, list) else [value]:
        path = base / str(entry)
        if not path.exists() and str(entry).startswith("../"):  # Roboflow exports: Ultralytics tries this too
            path = base / str(entry)[3:]
        if not path.exists():
            raise DataError(f"{yaml_file}: `{split}: {entry}` is {path}, which does not exist")
        paths.append(path)
    return paths


def split_images(layout: YoloLayout, split: str) -> list[Path]:
    """Every image of `split`: the folders' image files (recursive, sorted) and the lists' entries, in order."""
    images: list[Path] = []
    for source in layout.sources[split]:
        if source.is_dir():
            images += sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
        else:
            lines = [s.strip() for s in source.read_text(encoding="utf-8").splitlines()]
            images += [source.parent / s for s in lines if s]
    return images
