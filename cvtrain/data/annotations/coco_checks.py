"""The checks every reader of a COCO-format json shares (`data=coco`, `data=coco_seg`, `cvtrain data check`).

Always errors (`AnnotationLog.error`): the file is not a JSON object; `images` or `categories` is missing or not a
list (nothing else can be read without them); `annotations` is not a list; an image entry without `id`,
`file_name` or a positive `width` and `height`; a category without `id` and `name`; an annotation without `id`;
duplicate image, category or annotation ids (which one the others refer to is ambiguous, and pycocotools would
silently keep the last); a `file_name` that leaves the image folder.

Policy defects (`AnnotationLog.bad`, one annotation skipped under `skip`): an `image_id` that is not in `images`,
a `category_id` that is not in `categories`, and, for the field the reader uses, a bbox that is not four finite
numbers, is empty (zero or negative width or height) or lies wholly outside its image, or a segmentation that is
missing, has a polygon of fewer than 3 points or with a point more than an image size outside the image, or an RLE
whose size is not the image's or whose runs (compressed: once decoded) do not cover the image's pixels exactly.
A box partly outside its image is clipped (listed). Crowd annotations are checked by the same rules.

Every segmentation is checked here, once, because pycocotools' C code trusts its input: a malformed compressed
RLE string or a polygon point at 1e9 makes it read or write past its buffers (a crashed data worker or
evaluation, or a silently wrong mask).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from faster_coco_eval import mask_api_new_cpp as rle_api

from cvtrain.data.annotations.checks import AnnotationLog, check_box

Field = Literal["bbox", "segmentation"]
FIX_ANNOTATION = "fix or remove that annotation"


@dataclass(frozen=True)
class Usable:
    """One annotation that passed the checks: the json dict, and its XYXY box when the reader reads boxes."""

    ann: dict[str, Any]
    box: tuple[float, float, float, float] | None


def check_coco(
    dataset: Any, *, source: str | Path, checks: AnnotationLog, reads: Iterable[Field]
) -> dict[Any, list[Usable]]:
    """Validate a loaded COCO json (rules: module docstring); the usable annotations of every image, in file
    order. Fills `iscrowd` (0) where it is missing. `reads` names the fields the reader uses."""
    reads = set(reads)
    if not isinstance(dataset, dict):
        checks.error(source, "top level", f"a JSON {type(dataset).__name__}", "a COCO file is a JSON object")
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            checks.error(source, f"'{key}'", "missing or not a list", "every COCO annotation file has one")
    annotations = dataset.get("annotations", [])
    if not isinstance(annotations, list):
        checks.error(source, "'annotations'", "not a list", "'annotations' is a list of objects")
    images = _index(dataset["images"], ("id", "file_name", "width", "height"), "images", source, checks)
    for image_id, image in images.items():
        if not all(isinstance(image[k], int | float) and image[k] > 0 for k in ("width", "height")):
            size = f"{image['width']!r}x{image['height']!r}"
            checks.error(source, f"image id {image_id}", f"size {size} is not positive", "fix its size")
    categories = _index(dataset["categories"], ("id", "name"), "categories", source, checks)
    _index(annotations, ("id",), "annotations", source, checks)
    usable: dict[Any, list[Usable]] = {image_id: [] for image_id in images}
    for ann in annotations:
        ann.setdefault("iscrowd", 0)
        where = f"annotation id {ann['id']} (image id {ann.get('image_id')})"
        image = images.get(ann.get("image_id"))
        if image is None:
            what = f"image_id {ann.get('image_id')!r} is not in 'images'"
            checks.bad(source, where, what, "add the image to 'images' or remove the annotation")
            continue
        if ann.get("category_id") not in categories:
            what = f"category_id {ann.get('category_id')!r} is not in 'categories'"
            checks.bad(source, where, what, "add the category to 'categories' or fix the annotation")
            continue
        box = None
        if "bbox" in reads:
            box = _box(ann, image, source=source, where=where, checks=checks)
            if box is None:
                continue
        if "segmentation" in reads:
            problem = segmentation_problem(ann.get("segmentation"), image["height"], image["width"])
            if problem:
                checks.bad(source, where, problem, FIX_ANNOTATION)
                continue
        usable[image["id"]].append(Usable(ann, box))
    return usable


def no_objects(
    checks: AnnotationLog,
    source: str | Path,
    dataset: dict[str, Any],
    *,
    where: str,
    objects: str,
    usable: dict[Any, list[Usable]],
    since: int,
    fix: str,
) -> NoReturn:
    """The error of a split without a single usable object, saying what the file holds and what was dropped."""
    given = dataset.get("annotations")
    found = "no 'annotations' key" if given is None else f"{len(given)} annotation(s)"
    skipped = checks.summary(since)
    crowd = sum(1 for anns in usable.values() for u in anns if u.ann["iscrowd"])
    checks.error(
        source,
        where,
        f"no usable {objects}: {len(usable)} image(s), {found}"
        + (f" ({skipped}: see the warning above)" if skipped else "")
        + (f", {crowd} crowd region(s) (never targets)" if crowd else ""),
        fix,
    )


def _index(
    entries: list[Any], keys: tuple[str, ...], name: str, source: str | Path, checks: AnnotationLog
) -> dict[Any, dict[str, Any]]:
    """Entries by id; an entry that is not an object, lacks one of `keys` or repeats an id is an error."""
    by_id: dict[Any, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        where = f"{name}[{index}]"
        if not isinstance(entry, dict):
            checks.error(source, where, f"a JSON {type(entry).__name__}", f"each of '{name}' is an object")
        missing = [k for k in keys if k not in entry]
        if missing:
            checks.error(source, where, f"lacks {missing}", f"add them to that entry of '{name}'")
        if entry["id"] in by_id:
            checks.error(
                source,
                where,
                f"id {entry['id']!r} appears twice in '{name}'",
                f"give each of '{name}' its own id",
            )
        by_id[entry["id"]] = entry
    return by_id


def _box(
    ann: dict[str, Any], image: dict[str, Any], *, source: str | Path, where: str, checks: AnnotationLog
) -> tuple[float, float, float, float] | None:
    """The annotation's XYWH `bbox` as XYXY, checked (`check_box`); None when skipped."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        checks.bad(source, where, f"bbox {bbox!r} is not [x, y, w, h]", FIX_ANNOTATION)
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        checks.bad(source, where, f"bbox {bbox!r} is not numbers", FIX_ANNOTATION)
        return None
    return check_box(
        checks,
        (x, y, x + w, y + h),
        width=image["width"],
        height=image["height"],
        file=source,
        where=where,
        fix=FIX_ANNOTATION,
    )


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why a `segmentation` (polygons, uncompressed or compressed RLE) cannot be rasterised, else None."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "segmentation is an empty list"
        for index, polygon in enumerate(segmentation):
            if not isinstance(polygon, list) or not all(_finite(v) for v in polygon):
                return f"segmentation polygon {index} is not a list of numbers"
            if len(polygon) < 6 or len(polygon) % 2:
                return f"segmentation polygon {index} has {len(polygon)} numbers (needs 3+ x,y points)"
            far = _far_point(polygon, height, width)
            if far:
                return (
                    f"segmentation polygon {index} has the point {far}, beyond the {width:g}x{height:g} image"
                )
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if not isinstance(size, list | tuple) or list(size) != [height, width]:
            return f"segmentation RLE size {size!r} is not the image's [height, width] {[height, width]}"
        if isinstance(counts, str | bytes):
            try:  # faster-coco-eval's parser of the compressed string checks what pycocotools' trusts
                rle = {"size": [int(height), int(width)], "counts": counts}
                counts = rle_api.toUncompressedRLE([rle])[0]["counts"]
            except (RuntimeError, ValueError) as e:
                return f"segmentation RLE counts {_quote(counts)} is not a compressed RLE ({e})"
        if not isinstance(counts, list):
            return f"segmentation RLE counts is a {type(counts).__name__}"
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            return "segmentation RLE counts are not all whole numbers of pixels"
        if sum(counts) != height * width:
            return (
                f"segmentation RLE runs cover {sum(counts)} pixels, not the {width:g}x{height:g} image's "
                f"{height * width:g}"
            )
        return None
    return f"segmentation {segmentation!r:.60} is neither polygons nor RLE"


def _far_point(polygon: list[float], height: float, width: float) -> str | None:
    """The first x,y point more than the image's size outside it, as text, else None. A point just outside is
    common (rounding) and harmless; one far out only costs pycocotools time and memory, and past ~1e9 crashes it."""
    for x, y in zip(polygon[::2], polygon[1::2], strict=True):
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            return f"({x:g}, {y:g})"
    return None


def _quote(counts: str | bytes) -> str:
    """The start of a counts string, for a message (a crowd region's RLE can be thousands of characters)."""
    text = counts.decode("latin-1") if isinstance(counts, bytes) else counts
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
