"""Reading one Pascal VOC annotation XML (`data=voc`), every defect reported to an `AnnotationLog`.

XML boxes are 1-based pixel corners; cvtrain uses COCO's continuous 0-based pixels, so the XML's
(xmin, ymin, xmax, ymax) is the box (xmin - 1, ymin - 1, xmax, ymax). Coordinates are parsed as floats (real
files contain fractional ones).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cvtrain.data.annotations.checks import AnnotationLog, check_box
from cvtrain.data.decoding.images import displayed_size
from cvtrain.errors import DataError


@dataclass
class VOCObjects:
    """The usable objects of one XML: XYXY boxes (0-based), class indices and `difficult` flags."""

    width: int
    height: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    difficult: list[bool] = field(default_factory=list)


def read_voc_xml(
    xml_path: Path, image_path: Path, *, class_names: Sequence[str], checks: AnnotationLog, split_file: Path
) -> VOCObjects | None:
    """The objects of one image; None when the XML is missing or does not parse and `checks` skips it.

    An object of a class not in `class_names` or whose `<bndbox>` is missing, not numbers, empty or wholly outside
    the image is a policy defect (skipped under `skip`); a box partly outside is kept and listed as clipped."""
    try:
        root = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        fix = f"restore the file or remove {image_path.stem} from {split_file}"
        checks.bad(xml_path, "the file", f"is missing (listed in {split_file})", fix)
        return None
    except ET.ParseError as e:
        checks.bad(xml_path, "the file", f"is not valid XML ({e})", "fix or re-extract the file")
        return None
    class_index = {name: i for i, name in enumerate(class_names)}
    found = VOCObjects(*_image_size(root, xml_path, image_path))
    for index, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        where = f"object {index} ({name})"
        if name not in class_index:
            what = f"class name {name!r} is not one of the dataset's classes ({', '.join(class_names)})"
            checks.bad(xml_path, where, what, "correct the name, or list the classes with data.classes=[...]")
            continue
        fix = "fix or remove the <object>"
        coordinates = [obj.findtext(f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
        if None in coordinates:
            checks.bad(xml_path, where, "<bndbox> lacks xmin, ymin, xmax or ymax", fix)
            continue
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in coordinates)
        except ValueError:
            checks.bad(xml_path, where, f"<bndbox> {coordinates} is not numbers", fix)
            continue
        box = check_box(
            checks, (xmin - 1.0, ymin - 1.0, xmax, ymax), width=found.width, height=found.height, file=xml_path,
            where=where, fix=fix,
        )  # fmt: skip
        if box is not None:
            found.boxes.append(box)
            found.labels.append(class_index[name])
            found.difficult.append(_flag(obj.findtext("difficult")))
    return found


def _flag(text: str | None) -> bool:
    try:
        return bool(int(float(text))) if text and text.strip() else False
    except ValueError:
        return False


def _image_size(root: ET.Element, xml_path: Path, image_path: Path) -> tuple[int, int]:
    """(width, height) from `<size>`; from the image header (no decoding, EXIF orientation applied) when the XML
    lacks it."""
    try:
        width = int(float(root.findtext("size/width", "")))
        height = int(float(root.findtext("size/height", "")))
        if width > 0 and height > 0:
            return width, height
    except ValueError:
        pass
    try:
        return displayed_size(image_path)
    except OSError as e:
        raise DataError(
            f"{xml_path} has no usable <size> and its image {image_path} cannot be read ({e})"
        ) from e
