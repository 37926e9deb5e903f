"""The detection form of `data=shapes`: the same scenes written in the Pascal VOC layout and in the COCO layout.

One cache folder (see `ensure_shapes_detection`) holds both, read by the real loaders:

    VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets/Main}   -> VOCDetection(root=.../VOCdevkit, years=[2007])
    annotations/instances_{train,val}.json + {train,val}/*.jpg  -> COCODetection(ann_file=..., image_dir=...)

Each image holds 2-5 shapes. Objects with less than 1 % of the image visible (tiny or mostly hidden by later
shapes) are `difficult` in the VOC copy. In the COCO copy, every `CROWD_EVERY`-th image draws three shapes of one
class and annotates those that stay visible as a single `iscrowd` region (union box, RLE mask), and the category
ids are non-contiguous (`SHAPES_COCO_CATEGORY_IDS`), so the label mapping is exercised. ImageSets/Main/test.txt
repeats val.txt: the synthetic data has no separate test split. Every COCO object carries its visible pixels as an
RLE mask: the instance form (`model=mask_rcnn`) always reads the COCO copy, with those masks in its targets.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from cvtrain.data.coco.detection import COCODetection
from cvtrain.data.detection_splits import detection_splits
from cvtrain.data.samples.detection import DetectionTransforms
from cvtrain.data.shapes.scenes import SHAPE_CLASSES, ShapeObject, cache_key, materialize, render_scene
from cvtrain.data.splits import DataSplits
from cvtrain.data.voc.detection import VOCDetection

SHAPES_COCO_CATEGORY_IDS = (2, 3, 7, 11, 12)  # one per SHAPE_CLASSES entry, gaps on purpose
CROWD_EVERY = 8
DIFFICULT_VISIBLE_FRACTION = 0.01
MIN_RADIUS, MAX_RADIUS = 0.08, 0.22  # fractions of the image size: several objects fit with moderate overlap
WRITER_VERSION = 1  # bump when this writer changes, so stale caches are not reused


def shapes_voc_root(path: Path) -> Path:
    """The `VOCdevkit` folder inside an `ensure_shapes_detection` folder (VOC2007 only)."""
    return Path(path) / "VOCdevkit"


def shapes_coco_paths(path: Path, split: str) -> tuple[Path, Path]:
    """(annotation json, image folder) of the COCO copy for `split` ("train" or "val")."""
    return Path(path) / "annotations" / f"instances_{split}.json", Path(path) / split


def ensure_shapes_detection(
    cache_dir: str | Path, *, image_size: int, train_images: int, val_images: int, seed: int
) -> Path:
    """Write the shapes detection data once into `cache_dir` (reused when present) and return its folder."""
    params = dict(
        kind="detection",
        writer=WRITER_VERSION,
        image_size=image_size,
        train=train_images,
        val=val_images,
        seed=seed,
    )
    final = Path(cache_dir).expanduser() / f"detection-{cache_key(**params)}"
    return materialize(
        final,
        lambda tmp: write_detection(
            tmp, image_size=image_size, train_images=train_images, val_images=val_images, seed=seed
        ),
    )


def shapes_detection_split(
    cfg: Any,
    *,
    train: bool,
    transforms: DetectionTransforms | None = None,
    require_images: bool = True,
    masks: bool = False,
) -> VOCDetection | COCODetection:
    """One split of the scenes (written once) through the real loaders, in the layout `data.layout` names (the
    COCO one with instance `masks`: the VOC copy has none)."""
    folder = ensure_shapes_detection(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.scene_size,
        train_images=cfg.train_images,
        val_images=cfg.val_images,
        seed=cfg.seed,
    )
    split = "train" if train else "val"
    if cfg.layout == "coco" or masks:
        ann_file, image_dir = shapes_coco_paths(folder, split)
        return COCODetection(
            ann_file=ann_file,
            image_dir=image_dir,
            keep_empty=False,
            train=train,
            transforms=transforms,
            require_images=require_images,
            masks=masks,
        )
    return VOCDetection(
        root=shapes_voc_root(folder),
        years=[2007],
        split=split,
        transforms=transforms,
        require_images=require_images,
        class_names=SHAPE_CLASSES,
    )


def build_shapes_detection(
    cfg: Any, *, aug: Any, need_train: bool, require_images: bool = True, masks: bool = False
) -> DataSplits:
    """The detection form of `data=shapes` (every scene is square: no aspect-ratio grouping); with `masks`, the
    instance form (the COCO copy, instance masks in the targets)."""
    return detection_splits(
        partial(shapes_detection_split, cfg, masks=masks),
        aug=aug,
        need_train=need_train,
        grouping=False,
        require_images=require_images,
    )


def write_detection(out: Path, *, image_size: int, train_images: int, val_images: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    voc = shapes_voc_root(out) / "VOC2007"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    (out / "annotations").mkdir()
    stems_by_split: dict[str, list[str]] = {}
    index = 0
    for split, count in (("train", train_images), ("val", val_images)):
        ann_file, image_dir = shapes_coco_paths(out, split)
        image_dir.mkdir()
        coco = _empty_coco()
        stems_by_split[split] = []
        for _ in range(count):
            index += 1
            stem = f"{index:06d}"
            crowd = index % CROWD_EVERY == 0
            image, objects, crowd_label = _scene(rng, image_size, crowd)
            jpeg = _encode_jpeg(image)
            (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(jpeg)
            (image_dir / f"{stem}.jpg").write_bytes(jpeg)
            _write_voc_xml(voc / "Annotations" / f"{stem}.xml", stem, image_size, objects)
            _add_coco_image(coco, index, f"{stem}.jpg", image_size, objects, crowd_label)
            stems_by_split[split].append(stem)
        ann_file.write_text(json.dumps(coco))
    stems_by_split["trainval"] = stems_by_split["train"] + stems_by_split["val"]
    stems_by_split["test"] = stems_by_split["val"]
    for split, stems in stems_by_split.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))


def _scene(
    rng: np.random.Generator, size: int, crowd: bool
) -> tuple[np.ndarray, list[ShapeObject], int | None]:
    """Render one scene; a crowd scene starts with three shapes of one class (returned as `crowd_label`)."""
    num_objects = int(rng.integers(2, 6))
    labels = None
    crowd_label = None
    if crowd:
        crowd_label = int(rng.integers(len(SHAPE_CLASSES)))
        num_objects = max(num_objects, 4)
        labels = [crowd_label] * 3 + [int(rng.integers(len(SHAPE_CLASSES))) for _ in range(num_objects - 3)]
    image, objects = render_scene(
        rng, size, num_objects, min_radius=MIN_RADIUS, max_radius=MAX_RADIUS, labels=labels
    )
    if crowd and sum(o.label == crowd_label for o in objects) < 2:
        crowd_label = None  # occlusion left fewer than two of the group: annotate them one by one
    return image, objects, crowd_label


def _encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _is_difficult(obj: ShapeObject, size: int) -> bool:
    return int(obj.mask.sum()) < DIFFICULT_VISIBLE_FRACTION * size * size


def _write_voc_xml(path: Path, stem: str, size: int, objects: list[ShapeObject]) -> None:
    """An annotation as the VOC devkit writes it: integer 1-based corners, so xmin = x0 + 1 and xmax = x1."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "cvtrain synthetic shapes"
    size_el = ET.SubElement(root, "size")
    for key, value in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(size_el, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        x0, y0, x1, y1 = (int(round(v)) for v in obj.box)
        element = ET.SubElement(root, "object")
        ET.SubElement(element, "name").text = SHAPE_CLASSES[obj.label]
        ET.SubElement(element, "pose").text = "Unspecified"
        truncated = x0 == 0 or y0 == 0 or x1 == size or y1 == size
        ET.SubElement(element, "truncated").text = str(int(truncated))
        ET.SubElement(element, "difficult").text = str(int(_is_difficult(obj, size)))
        box = ET.SubElement(element, "bndbox")
        for key, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root, space="\t")
    ET.ElementTree(root).write(path, encoding="utf-8")


def _empty_coco() -> dict[str, Any]:
    categories = [
        {"id": cat_id, "name": name, "supercategory": "shape"}
        for cat_id, name in zip(SHAPES_COCO_CATEGORY_IDS, SHAPE_CLASSES, strict=True)
    ]
    return {"images": [], "annotations": [], "categories": categories}


def _add_coco_image(
    coco: dict[str, Any],
    image_id: int,
    file_name: str,
    size: int,
    objects: list[ShapeObject],
    crowd_label: int | None,
) -> None:
    coco["images"].append({"id": image_id, "file_name": file_name, "width": size, "height": size})
    singles = [o for o in objects if o.label != crowd_label]
    group = [o for o in objects if o.label == crowd_label]
    for obj in singles:
        _add_coco_annotation(coco, image_id, obj.label, obj.mask, iscrowd=0)
    if group:
        union = np.logical_or.reduce([o.mask for o in group])
        _add_coco_annotation(coco, image_id, group[0].label, union, iscrowd=1)


def _add_coco_annotation(
    coco: dict[str, Any], image_id: int, label: int, mask: np.ndarray, *, iscrowd: int
) -> None:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))  # tight on the mask, integer-valued
    coco["annotations"].append(
        {
            "id": len(coco["annotations"]) + 1,
            "image_id": image_id,
            "category_id": SHAPES_COCO_CATEGORY_IDS[label],
            "bbox": [x, y, w, h],
            "area": float(mask_utils.area(rle)),
            "iscrowd": iscrowd,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
        }
    )
