"""Class-per-folder image trees: ImageNet (`root/train/<wnid>/*.JPEG`) and any `root/<split>/<class>/<image>`;
`build_imagefolder` builds `data=imagefolder` and `data=imagenet`.

Class indices follow the sorted folder names, as torchvision's ImageFolder does. Only files with an image
extension (any case) are samples; `.DS_Store`, `Thumbs.db`, `*.txt` and other strays are ignored.

A class folder of the training split without a single image (empty, or holding only strays) is refused, as
torchvision's ImageFolder refuses it: a class the model can never learn is almost always a mistake. With
`data.allow_empty_classes=true` it stays a class (so class indices match another split's, or a checkpoint's), with
a warning; either way `cvtrain data check` lists it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.checks import AnnotationProblem
from cvtrain.data.decoding.images import BadImageError, is_image_file, read_image
from cvtrain.data.imagefolder.imagenet_names import imagenet_names
from cvtrain.data.splits import DataSplits, require_task
from cvtrain.data.transforms.pipelines import ClassificationTransform, classification_transforms
from cvtrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def find_classes(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(
            f"{split_dir} does not exist. Expected a class-per-folder tree: {split_dir}/<class>/<image files>."
        )
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir} has no class folders. Expected {split_dir}/<class>/<image files>.")
    return classes


def read_synset_mapping(path: Path, classes: list[str]) -> list[str]:
    """ImageNet's LOC_synset_mapping.txt: lines of "n01440764 tench, Tinca tinca" -> the first name per folder."""
    names: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        wnid, _, rest = line.strip().partition(" ")
        if not rest:
            raise DataError(f"{path}:{line_no}: expected '<folder> <name>', got {line!r}")
        names[wnid] = rest.split(",")[0].strip()
    return [names.get(c, c) for c in classes]


class ImageFolderDataset(Dataset):
    """Samples `(image uint8 [3,H,W], class index, meta)`; an unreadable image yields a `BadSample`. The
    transform reads the file itself, so a JPEG is decoded no larger than its crop needs."""

    def __init__(
        self, *, split_dir: str | Path, classes: list[str], transform: ClassificationTransform | None = None
    ):
        self.split_dir = Path(split_dir)
        self.classes = classes
        self.transform = transform
        found = find_classes(self.split_dir)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(
                f"{self.split_dir} has class folders that the training split lacks: {unknown[:5]}. "
                "Both splits must have the same class folders."
            )
        self.samples: list[tuple[str, int]] = []
        for index, name in enumerate(classes):
            folder = self.split_dir / name
            if folder.is_dir():
                files = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
                self.samples.extend((str(p), index) for p in files)
        if not self.samples:
            raise DataError(
                f"no image files under {self.split_dir} (looked for .jpg, .jpeg, .png, ... in any case)."
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int, dict[str, Any]] | BadSample:
        path, label = self.samples[index]
        try:
            image = read_image(path) if self.transform is None else self.transform.read(path)
        except BadImageError as e:
            return BadSample(path=e.path, reason=e.reason)
        return image, label, {"path": path, "image_id": index}

    def targets(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples])

    def empty_classes(self) -> list[str]:
        """The classes without a sample in this split."""
        found = {label for _, label in self.samples}
        return [name for index, name in enumerate(self.classes) if index not in found]


EMPTY_CLASS_FIX = (
    "add its images or remove the folder, or set data.allow_empty_classes=true to keep it as a class without "
    "training images (e.g. so class indices match another split's)"
)


def empty_class_problems(dataset: ImageFolderDataset, *, allowed: bool) -> list[AnnotationProblem]:
    """Each class folder of `dataset` (the training split) without an image, as a problem (a folder name is this
    format's annotation): a `DataError` naming them unless `allowed`, else kept with a warning."""
    problems = []
    for name in dataset.empty_classes():
        folder = dataset.split_dir / name
        strays = sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        what = f"class folder {name!r} holds no image file (.jpg, .jpeg, .png, ... in any case)"
        if strays:
            what += f": only {len(strays)} other file(s), e.g. {strays[0]!r}"
        problems.append(AnnotationProblem(str(folder), "train split", what, EMPTY_CLASS_FIX, "kept"))
    if problems and not allowed:
        shown = "; ".join(f"{p.file}: {p.what}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError(f"{shown}{more}; {EMPTY_CLASS_FIX}")
    for problem in problems:
        log.warning("%s: %s; kept as a class (data.allow_empty_classes=true)", problem.file, problem.what)
    return problems


def build_imagefolder(
    cfg: Any, *, aug: Any, task: str, need_train: bool, require_images: bool = True
) -> DataSplits:
    """`root/<train_dir>` and `root/<val_dir>`; class names from `synset_mapping` when that file exists, else,
    when every class folder is an ImageNet wnid, from ImageNet's own table (`imagenet_names.py`)."""
    require_task(cfg.format, task, ("classification",))
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"data.root={cfg.root} is not a folder. Point data.root at the dataset's top folder."
        )
    train_dir = root / cfg.train_dir
    classes = find_classes(train_dir if train_dir.is_dir() else root / cfg.val_dir)
    names = classes
    if cfg.synset_mapping and (root / cfg.synset_mapping).is_file():
        names = read_synset_mapping(root / cfg.synset_mapping, classes)
    elif set(classes) <= imagenet_names().keys():
        names = [imagenet_names()[c] for c in classes]
        log.info("%s: class names from ImageNet's table of wnids (%s, ...)", root, ", ".join(names[:3]))
    on_device = (
        cfg.decode == "device"
    )  # JPEGs decoded on the training device (cvtrain/data/decoding/device_decode.py)
    train = None
    if need_train:
        train = ImageFolderDataset(
            split_dir=train_dir,
            classes=classes,
            transform=classification_transforms(aug, train=True, defer_decode=on_device),
        )
    val = ImageFolderDataset(
        split_dir=root / cfg.val_dir,
        classes=classes,
        transform=classification_transforms(aug, train=False, defer_decode=on_device),
    )
    problems = [] if train is None else empty_class_problems(train, allowed=cfg.allow_empty_classes)
    return DataSplits(train=train, val=val, class_names=names, problems=problems)
