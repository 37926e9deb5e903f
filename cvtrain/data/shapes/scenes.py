"""`data=shapes`: a built-in synthetic dataset written to disk in the real formats, so the real loaders read it.

Scenes are coloured shapes on noisy backgrounds, generated deterministically from a seed. `render_scene` draws
one scene and returns, for every object, its visible mask and box; the format writers (class-per-folder here, VOC
and COCO layouts in the detection and segmentation modules) turn scenes into files. `materialize` writes a
dataset once into the cache, atomically, so parallel jobs never see half a dataset.

Each form has its builder beside its writer (`build_shapes_classification` here); `shapes_forms.build_shapes`
picks the one the model's task needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvtrain.data.imagefolder.classification import ImageFolderDataset
from cvtrain.data.splits import DataSplits
from cvtrain.data.transforms.pipelines import classification_transforms

SHAPE_CLASSES = ("circle", "square", "triangle", "diamond", "cross")
FORMAT_VERSION = 2  # bump when the generator changes, so stale caches are not reused


@dataclass
class ShapeObject:
    label: int  # index into SHAPE_CLASSES
    mask: np.ndarray  # bool [H, W]: the pixels of this object still visible after later objects were drawn
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1), continuous 0-based pixels, tight on `mask`


def _shape_mask(kind: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    if kind == "circle":
        return dx**2 + dy**2 <= r**2
    if kind == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if kind == "triangle":
        apex, base = cy - r, cy + 0.8 * r
        return (yy >= apex) & (yy <= base) & (np.abs(dx) <= (yy - apex) / (base - apex) * r)
    if kind == "cross":
        arm = r / 3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {kind!r}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(40, 215, size=3)
    ramp = np.linspace(-1, 1, size)[None, :, None] * rng.uniform(-30, 30, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return np.clip(base + ramp + noise, 0, 255)


def _colour_far_from(rng: np.random.Generator, reference: np.ndarray) -> np.ndarray:
    for _ in range(50):
        colour = rng.uniform(0, 255, size=3)
        if np.abs(colour - reference).sum() > 180:
            return colour
    return 255 - reference


def render_scene(
    rng: np.random.Generator,
    size: int,
    num_objects: int,
    min_radius: float = 0.12,
    max_radius: float = 0.3,
    inside: float = 0.6,
    labels: list[int] | None = None,
) -> tuple[np.ndarray, list[ShapeObject]]:
    """Draw `num_objects` shapes (radii as fractions of `size`) on a noisy background.

    `labels` fixes the class of each object (random classes otherwise). Centres keep at least `inside` x radius
    from the border (1.0: every shape fully inside the image).

    Returns the uint8 image [H, W, 3] and the objects that remain visible (an object fully hidden by later ones
    is dropped), each with its visible mask and tight box.
    """
    image = _background(rng, size)
    mean_bg = image.reshape(-1, 3).mean(0)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    kept_labels, masks = [], []
    for i in range(num_objects):
        label = labels[i] if labels is not None else int(rng.integers(len(SHAPE_CLASSES)))
        r = rng.uniform(min_radius, max_radius) * size
        cx, cy = rng.uniform(r * inside, size - r * inside, size=2)
        mask = _shape_mask(SHAPE_CLASSES[label], xx, yy, cx, cy, r)
        if not mask.any():
            continue
        colour = _colour_far_from(rng, mean_bg)
        image[mask] = colour + rng.normal(0, 6, size=(int(mask.sum()), 3))
        masks = [m & ~mask for m in masks]  # earlier objects lose the pixels this one covers
        kept_labels.append(label)
        masks.append(mask)
    objects = []
    for label, mask in zip(kept_labels, masks, strict=True):
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        objects.append(ShapeObject(label=label, mask=mask, box=box))
    return np.clip(image, 0, 255).astype(np.uint8), objects


def cache_key(**params: object) -> str:
    """A short stable hash of the generator version and parameters, used as the cache folder name."""
    blob = json.dumps({"version": FORMAT_VERSION, **params}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def materialize(final_dir: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp_dir)` and move the result to `final_dir` atomically; reuse `final_dir` if it exists."""
    final_dir = Path(final_dir)
    if final_dir.is_dir():
        return final_dir
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}-", dir=final_dir.parent))
    try:
        write(tmp)
        os.rename(tmp, final_dir)
    except OSError:
        if not final_dir.is_dir():  # a parallel job finished first: theirs is identical, keep it
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final_dir


def write_classification(
    out: Path, *, image_size: int, train_per_class: int, val_per_class: int, seed: int
) -> None:
    """Class-per-folder layout: out/{train,val}/<shape>/<index>.png, one shape per image."""
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(SHAPE_CLASSES):
            folder = out / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                image, _ = render_scene(
                    rng, image_size, 1, min_radius=0.25, max_radius=0.45, inside=1.0, labels=[label]
                )
                Image.fromarray(image).save(folder / f"{index:05d}.png")


def ensure_classification(
    cache_dir: Path, *, image_size: int, train_per_class: int, val_per_class: int, seed: int
) -> Path:
    params = dict(
        kind="classification", image_size=image_size, train=train_per_class, val=val_per_class, seed=seed
    )
    final = Path(cache_dir).expanduser() / f"classification-{cache_key(**params)}"
    return materialize(
        final,
        lambda tmp: write_classification(
            tmp,
            image_size=image_size,
            train_per_class=train_per_class,
            val_per_class=val_per_class,
            seed=seed,
        ),
    )


def build_shapes_classification(
    cfg: Any, *, aug: Any, need_train: bool, require_images: bool = True
) -> DataSplits:
    """One shape per `SHAPES_CLASSIFICATION_SIZE` image, in class folders read by the ImageFolder loader."""
    root = ensure_classification(
        Path(cfg.cache_dir).expanduser(),
        image_size=cfg.image_size,
        train_per_class=cfg.train_per_class,
        val_per_class=cfg.val_per_class,
        seed=cfg.seed,
    )
    classes = list(SHAPE_CLASSES)
    train = None
    if need_train:
        train = ImageFolderDataset(
            split_dir=root / "train", classes=classes, transform=classification_transforms(aug, train=True)
        )
    val = ImageFolderDataset(
        split_dir=root / "val", classes=classes, transform=classification_transforms(aug, train=False)
    )
    return DataSplits(train=train, val=val, class_names=classes)
