"""The segmentation form of `data=shapes`: synthetic scenes written in the Pascal VOC segmentation layout.

    <cache>/segmentation-<key>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    <cache>/segmentation-<key>/VOCdevkit/VOC2012/SegmentationClass/<id>.png     palette PNG, 255 = void
    <cache>/segmentation-<key>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Like VOC's annotators, each object gets a void band (255) about 2 px wide along its outline (1 px inside, 1 px
outside), so the loss and the metrics ignore the pixels whose label is ambiguous. The real VOC loader reads it:
`VOCSegmentation(root=ensure_shapes_segmentation(...), split="train", class_names=SHAPES_SEGMENTATION_CLASSES)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvtrain.data.decoding.palette import IGNORE_INDEX, write_index_png
from cvtrain.data.shapes.scenes import SHAPE_CLASSES, cache_key, materialize, render_scene
from cvtrain.data.splits import DataSplits
from cvtrain.data.transforms.segmentation import segmentation_transforms
from cvtrain.data.voc.segmentation import VOCSegmentation

SHAPES_SEGMENTATION_CLASSES = ("background", *SHAPE_CLASSES)
MAX_OBJECTS = 3  # objects per scene: 1..MAX_OBJECTS


def _shift_or(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by a 3x3 square (the pixel or any of its 8 neighbours is set)."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out


def void_band(mask: np.ndarray) -> np.ndarray:
    """The ~2 px band along the outline of a bool mask: its outermost pixels and the pixels just outside."""
    outside_ring = _shift_or(mask) & ~mask
    inside_ring = mask & _shift_or(~mask)
    return outside_ring | inside_ring


def write_segmentation(out: Path, *, image_size: int, train_images: int, val_images: int, seed: int) -> None:
    """Write the VOC-layout dataset under `out` (see the module docstring)."""
    voc = out / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = {
        "train": [f"train_{i:06d}" for i in range(train_images)],
        "val": [f"val_{i:06d}" for i in range(val_images)],
    }
    for image_id in ids["train"] + ids["val"]:
        image, objects = render_scene(rng, image_size, int(rng.integers(1, MAX_OBJECTS + 1)))
        label_map = np.zeros((image_size, image_size), dtype=np.uint8)
        for obj in objects:  # visible masks are disjoint: later shapes already cut earlier ones
            label_map[obj.mask] = obj.label + 1
        for obj in objects:
            label_map[void_band(obj.mask)] = IGNORE_INDEX
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        write_index_png(voc / "SegmentationClass" / f"{image_id}.png", label_map)
    split_dir = voc / "ImageSets" / "Segmentation"
    for split, split_ids in (*ids.items(), ("trainval", ids["train"] + ids["val"])):
        (split_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))


def ensure_shapes_segmentation(
    cache_dir: str | Path, *, image_size: int, train_images: int, val_images: int, seed: int
) -> Path:
    """Write the dataset once into `cache_dir` (atomically; reused afterwards) and return its `VOCdevkit` folder."""
    params = dict(kind="segmentation", image_size=image_size, train=train_images, val=val_images, seed=seed)
    final = Path(cache_dir).expanduser() / f"segmentation-{cache_key(**params)}"
    materialize(
        final,
        lambda tmp: write_segmentation(
            tmp, image_size=image_size, train_images=train_images, val_images=val_images, seed=seed
        ),
    )
    return final / "VOCdevkit"


def build_shapes_segmentation(
    cfg: Any, *, aug: Any, need_train: bool, require_images: bool = True
) -> DataSplits:
    """The segmentation form of `data=shapes`: `scene_size` scenes in the VOC layout, read by the VOC loader;
    training crops `aug.image_size`, evaluation sees the whole scene."""
    root = ensure_shapes_segmentation(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.scene_size,
        train_images=cfg.train_images,
        val_images=cfg.val_images,
        seed=cfg.seed,
    )
    train = None
    if need_train:
        train = VOCSegmentation(
            root=root,
            split="train",
            class_names=SHAPES_SEGMENTATION_CLASSES,
            transforms=segmentation_transforms(aug, train=True),
        )
    val = VOCSegmentation(
        root=root,
        split="val",
        class_names=SHAPES_SEGMENTATION_CLASSES,
        transforms=segmentation_transforms(aug, train=False),
    )
    return DataSplits(train=train, val=val, class_names=list(val.class_names))
