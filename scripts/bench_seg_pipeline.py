"""Images per second of the segmentation training input pipeline on one CPU core: torchvision's reference preset
against cvtrain's `data=voc_seg aug=segmentation` as `cvtrain fit` builds it.

Both read the same Pascal VOC 2012 files (a JPEG photo and its palette PNG mask) through a DataLoader with
`num_workers=0` and `torch.set_num_threads(1)`, so the figure is per core:

- reference: torchvision's references/segmentation/presets.py `SegmentationPresetTrain(base_size=520,
  crop_size=480)` with its PIL backend, written out with `torchvision.transforms.functional`: the shorter side
  resized to a random 260..1040 px (image bilinear with antialiasing, mask nearest), a horizontal flip with
  probability 0.5, padding to 480 (image 0, mask 255) and a random 480 x 480 crop, `pil_to_tensor`, float, Normalize;
  the mask as an int64 tensor;
- cvtrain: `build_setup` + `train_loader` + the task's collate for `data=voc_seg aug=segmentation
  aug.image_size=480`, with `aug.scale_range` set so that the fixture's 500 x 375 photo is scaled by the same
  factors as the reference's (260/375 .. 1040/375). Batches stay uint8, images and masks; the normalisation the task
  then applies on the training device is timed separately on this CPU (on a GPU it runs there).

The fixture holds one VOC photo with a segmentation mask (`2007_000063`, 500 x 375), so the split lists it
`--images` times, under links. The two take turns; CPU time of the process is counted (`time.process_time`).
cvtrain's set-up has malloc keep freed memory (`cvtrain.host_memory`) for the whole process, before the first
timed turn of either pipeline.

    .venv/bin/python scripts/bench_seg_pipeline.py --voc ../shared/fixtures/voc-sample/VOCdevkit
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from bench_pipeline import MEAN, STD, compare  # scripts/, the first entry of sys.path
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import functional as TF

from cvtrain.composition import Setup, build_setup
from cvtrain.config import to_typed
from cvtrain.config.compose import compose_config, config_composer
from cvtrain.engine import loaders

BASE, CROP = 520, 480
PHOTO = "2007_000063"  # the fixture's one photo with a segmentation mask


class ReferenceVOC(Dataset):
    """The reference's sample: PIL files through presets.py's training steps."""

    def __init__(self, voc2012: Path, ids: list[str]) -> None:
        self.voc2012, self.ids = voc2012, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        name = self.ids[index]
        image = Image.open(self.voc2012 / "JPEGImages" / f"{name}.jpg").convert("RGB")
        mask = Image.open(self.voc2012 / "SegmentationClass" / f"{name}.png")
        size = random.randint(BASE // 2, 2 * BASE)  # RandomResize(min_size, max_size): the shorter side
        image = TF.resize(image, size, antialias=True)
        mask = TF.resize(mask, size, interpolation=TF.InterpolationMode.NEAREST)
        if random.random() < 0.5:
            image, mask = TF.hflip(image), TF.hflip(mask)
        pad_w, pad_h = max(CROP - image.width, 0), max(CROP - image.height, 0)  # pad_if_smaller
        if pad_w or pad_h:
            image = TF.pad(image, [0, 0, pad_w, pad_h], fill=0)
            mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=255)
        top, left = random.randint(0, image.height - CROP), random.randint(0, image.width - CROP)
        image, mask = TF.crop(image, top, left, CROP, CROP), TF.crop(mask, top, left, CROP, CROP)
        pixels = TF.normalize(TF.convert_image_dtype(TF.pil_to_tensor(image), torch.float), MEAN, STD)
        return pixels, torch.as_tensor(np.array(mask), dtype=torch.int64)


def voc_tree(voc: Path, out: Path, images: int) -> Path:
    """A VOC2012 folder whose train and val splits list `images` links to the fixture's photo and mask."""
    source = voc / "VOC2012"
    for folder, suffix in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png")):
        (out / "VOC2012" / folder).mkdir(parents=True)
        for i in range(images):
            (out / "VOC2012" / folder / f"{PHOTO}_{i:04d}{suffix}").symlink_to(
                (source / folder / f"{PHOTO}{suffix}").resolve()
            )
    splits = out / "VOC2012" / "ImageSets" / "Segmentation"
    splits.mkdir(parents=True)
    ids = "".join(f"{PHOTO}_{i:04d}\n" for i in range(images))
    for split in ("train", "val"):
        (splits / f"{split}.txt").write_text(ids)
    return out


def reference_batches(tree: Path, batch_size: int) -> Iterable:
    ids = (tree / "VOC2012" / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    return DataLoader(ReferenceVOC(tree / "VOC2012", ids), batch_size=batch_size, shuffle=True, num_workers=0)


def cvtrain_setup(tree: Path, batch_size: int) -> Setup:
    """What `cvtrain fit` builds for this data, once: each turn then only builds a new loader."""
    with Image.open(tree / "VOC2012" / "JPEGImages" / f"{PHOTO}_0000.jpg") as im:
        shorter = min(im.size)
    scale = [BASE // 2 / shorter, 2 * BASE / shorter]  # the reference's factors for this photo
    with config_composer():
        raw = compose_config(
            [
                "data=voc_seg",
                f"data.root={tree}",
                "aug=segmentation",
                f"aug.image_size={CROP}",
                f"aug.scale_range=[{scale[0]},{scale[1]}]",
                f"data.batch_size={batch_size}",
                "data.num_workers=0",
                "model=fcn",
                "model.pretrained_backbone=false",  # the pipeline is timed, not the weights
                "trainer.device=cpu",
            ]
        )
    return build_setup(to_typed(raw), need_train=True)


def cvtrain_batches(setup: Setup, batch_size: int) -> tuple[Iterable, Callable]:
    """The batches `cvtrain fit` trains on, and the task's device-side input conversion."""
    loader = loaders.train_loader(
        setup.data.train,
        collate=setup.task.collate,
        batch_size=batch_size,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        device=setup.device,
        seed=0,
    )
    loader.batch_sampler.set_epoch(0)
    return loader, setup.task.inputs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voc", type=Path, default=Path("../shared/fixtures/voc-sample/VOCdevkit"))
    parser.add_argument("--images", type=int, default=192, help="samples per timed turn")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tree = voc_tree(args.voc, Path(tmp) / "VOCdevkit", args.images)
        setup = cvtrain_setup(tree, args.batch_size)
        compare(
            f"VOC {PHOTO} (500x375) x {args.images}, crop {CROP}, batch {args.batch_size}, {args.repeats} turns",
            lambda: reference_batches(tree, args.batch_size),
            lambda: cvtrain_batches(setup, args.batch_size),
            args.repeats,
        )


if __name__ == "__main__":
    main()
