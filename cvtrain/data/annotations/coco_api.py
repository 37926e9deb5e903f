"""COCO-format annotations as pycocotools' `COCO` index: read a json, check it and index what is usable.

Every detection format's ground truth is scored through this index (VOC and YOLO-txt through `records.py`),
so it lives with the shared annotation checks, not in the `data=coco` format.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from cvtrain.data.annotations.checks import AnnotationLog
from cvtrain.data.annotations.coco_checks import Usable, check_coco
from cvtrain.errors import DataError


def _silently(fn: Callable[[], Any]) -> Any:
    # pycocotools prints progress lines ("loading annotations...", "creating index...") on stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def read_coco_json(ann_file: str | Path) -> Any:
    """The parsed json of a COCO-format file; a missing, unreadable or unparseable file is a `DataError`."""
    path = Path(ann_file).expanduser()
    if not path.is_file():
        raise DataError(
            f"COCO annotation file {path} does not exist: point the annotation path at an instances json"
        )
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read COCO annotation file {path}: {e}") from e


def load_coco_api(ann_file: str | Path) -> COCO:
    """Load, check (every defect an error) and index a COCO-format json as a `pycocotools.coco.COCO`."""
    path = Path(ann_file).expanduser()
    return coco_api_from_dict(read_coco_json(path), source=str(path))


def coco_api_from_dict(dataset: Any, *, source: str = "<COCO dict>") -> COCO:
    """Check an in-memory COCO-format dict (e.g. `VOCDetection.to_coco()`) with `check_coco`, every defect an
    error, and index it as a `COCO` object (`index_coco`)."""
    usable = check_coco(dataset, source=source, checks=AnnotationLog("error"), reads=("bbox",))
    return index_coco(dataset, usable)


def index_coco(dataset: dict[str, Any], usable: dict[Any, list[Usable]]) -> COCO:
    """Index a checked COCO dict with only its `usable` annotations (in file order), so what was skipped is
    neither trained on nor scored. Fills `area` (box area) where a file omits it, so COCOeval never dies on a
    KeyError."""
    boxes = {id(u.ann): u.box for anns in usable.values() for u in anns}
    annotations = [ann for ann in dataset.get("annotations", []) if id(ann) in boxes]
    for ann in annotations:
        box = boxes[id(ann)]
        if "area" not in ann and box is not None:
            ann["area"] = (box[2] - box[0]) * (box[3] - box[1])
    coco = COCO()
    coco.dataset = {**dataset, "annotations": annotations}
    _silently(coco.createIndex)
    return coco
