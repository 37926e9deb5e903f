"""Images per second of the classification input pipeline on one CPU core: torchvision's reference preset against
cvtrain's pipeline as `cvtrain fit` builds it.

Both read the same class-per-folder JPEGs (`ROOT/train/<class>/*`, in a random order for training) through a DataLoader with
`num_workers=0` and `torch.set_num_threads(1)`, so the figure is per core:

- reference: `torchvision.datasets.ImageFolder` (PIL loader) with the transforms of torchvision's
  references/classification/presets.py (`ClassificationPresetTrain`, PIL backend): RandomResizedCrop(224),
  RandomHorizontalFlip, PILToTensor, ToDtype(float32, scale=True), Normalize; or, with `--eval`,
  `ClassificationPresetEval`: Resize(256), CenterCrop(224), the same conversion;
- cvtrain: `build_setup` + `train_loader` (or `eval_loader`) + the task's collate for `data=imagenet
  aug=imagenet`; batches stay uint8. The normalisation the task then applies on the training device is timed
  separately on this CPU (on a GPU it runs there, not in the workers).

The image files are read from the page cache after a warm-up pass (the disk is not what is measured). The
fixtures' ImageNet sample is 224 px (resized), far below ImageNet's ~500x375 photos, so `--upscale 500x375`
first writes PIL-upscaled copies (JPEG quality 90) into a temporary tree and measures those as well.

    PYTHONPATH=. .venv/bin/python scripts/bench_pipeline.py --root ../shared/fixtures/imagenet-mini --upscale 500x375
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from cvtrain.composition import build_setup
from cvtrain.config import to_typed
from cvtrain.config.compose import compose_config, config_composer
from cvtrain.engine import loaders

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def repeat(loader: DataLoader, images: int, set_epoch: Callable[[int], None] | None = None) -> Iterable:
    """Batches of `loader`, epoch after epoch, until `images` images have come."""
    seen, epoch = 0, 0
    while seen < images:
        if set_epoch is not None:
            set_epoch(epoch)
        for batch in loader:
            yield batch
            seen += len(batch[0]) if isinstance(batch, list) else len(batch)
            if seen >= images:
                return
        epoch += 1


def reference_batches(root: Path, *, train: bool, batch_size: int, images: int) -> Iterable:
    """torchvision's reference presets (PIL backend, transforms v1 as presets.py uses by default)."""
    if train:
        geometry = [T.RandomResizedCrop(224, antialias=True), T.RandomHorizontalFlip(0.5)]
    else:
        geometry = [T.Resize(256, antialias=True), T.CenterCrop(224)]
    preset = T.Compose([*geometry, T.PILToTensor(), T.ConvertImageDtype(torch.float), T.Normalize(MEAN, STD)])
    dataset = datasets.ImageFolder(str(root / "train"), transform=preset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=train, num_workers=0)
    return repeat(loader, images)


def cvtrain_batches(root: Path, *, train: bool, batch_size: int, images: int) -> tuple[Iterable, Callable]:
    """The batches `cvtrain fit` trains (or evaluates) on, and the task's device-side input conversion. Both
    modes read `ROOT/train` (the evaluation pipeline as the validation split's)."""
    with config_composer():
        raw = compose_config(
            [
                "data=imagenet",
                f"data.root={root}",
                "data.val_dir=train",
                "aug=imagenet",
                f"data.batch_size={batch_size}",
                "data.num_workers=0",
                "model=small_cnn",
                "trainer.device=cpu",
            ]
        )
    setup = build_setup(to_typed(raw), need_train=train)
    common = dict(collate=setup.task.collate, batch_size=batch_size, num_workers=0, pin_memory=False)
    common |= dict(persistent_workers=False, device=setup.device)
    if not train:
        return repeat(loaders.eval_loader(setup.data.val, **common), images), setup.task.inputs
    loader = loaders.train_loader(setup.data.train, seed=0, **common)
    return repeat(loader, images, loader.batch_sampler.set_epoch), setup.task.inputs


def rate(batches: Iterable, convert: Callable | None = None) -> tuple[float, float | None]:
    """Images per CPU second of this process (`time.process_time`, so other jobs on a shared machine do not
    count) of iterating the batches, and of the conversion alone (None without one)."""
    count, start, convert_s = 0, time.process_time(), 0.0
    for batch in batches:
        images = batch[0] if isinstance(batch, list) else batch.images
        if convert is not None:
            t = time.process_time()
            convert(images)
            convert_s += time.process_time() - t
        count += len(images)
    loading_s = time.process_time() - start - convert_s
    return count / loading_s, (count / convert_s if convert is not None else None)


def upscaled_copy(root: Path, out: Path, size: tuple[int, int]) -> Path:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".jpeg", ".jpg"):
            target = out / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as im:
                im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target, quality=90)
    return out


def photo_tree(folders: list[Path], out: Path) -> Path:
    """A one-class tree `out/train/photos/` of links to the JPEGs in `folders` (unchanged files)."""
    (out / "train" / "photos").mkdir(parents=True)
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in (".jpeg", ".jpg"):
                (out / "train" / "photos" / path.name).symlink_to(path.resolve())
    return out


def describe(root: Path) -> str:
    files = [p for p in (root / "train").rglob("*") if p.is_file() and p.suffix.lower() in (".jpeg", ".jpg")]
    sizes = [Image.open(p).size for p in files]
    kib = [p.stat().st_size / 1024 for p in files]
    w, h = statistics.median(s[0] for s in sizes), statistics.median(s[1] for s in sizes)
    return f"{len(sizes)} JPEGs, median {w:.0f}x{h:.0f} px, median {statistics.median(kib):.0f} KiB"


def compare(
    title: str, reference: Callable[[], Iterable], ours: Callable[[], tuple[Iterable, Callable]], repeats: int
):
    """Reference and cvtrain timed in turns (so a change of load hits both alike), after one untimed pass of each
    (page cache, lazy imports); prints the medians over the turns. `ours` also returns the task's conversion."""
    rate(reference())
    rate(ours()[0])
    refs, mine_, norms = [], [], []
    for _ in range(repeats):
        refs.append(rate(reference())[0])
        mine, norm = rate(*ours())
        mine_.append(mine)
        norms.append(norm)
    ref, mine, norm = statistics.median(refs), statistics.median(mine_), statistics.median(norms)
    both = 1 / (1 / mine + 1 / norm)
    print(title)
    print(
        f"  torchvision reference preset   {ref:7.1f} img/s  (turns: {', '.join(f'{r:.0f}' for r in refs)})"
    )
    print(
        f"  cvtrain pipeline (uint8)        {mine:7.1f} img/s  (turns: {', '.join(f'{r:.0f}' for r in mine_)})"
    )
    print(f"    per-core speed-up             {mine / ref:7.2f}x")
    print(f"  + normalising on this CPU       {both:7.1f} img/s  {both / ref:.2f}x (on a GPU it runs there)")


def bench(root: Path, *, train: bool, batch_size: int, images: int, repeats: int) -> None:
    kw = dict(train=train, batch_size=batch_size, images=images)
    compare(
        f"{root.name} ({describe(root)}), {'train' if train else 'eval'}, batch {batch_size}, {repeats} turns",
        lambda: reference_batches(root, **kw),
        lambda: cvtrain_batches(root, **kw),
        repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/work/shared/fixtures/imagenet-mini"))
    parser.add_argument("--images", type=int, default=512, help="images per timed training pass")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--upscale", nargs="*", default=[], help="also measure PIL-upscaled copies, e.g. 500x375"
    )
    parser.add_argument(
        "--photos",
        type=Path,
        nargs="*",
        default=[],
        help="also measure the JPEGs in these folders as one class",
    )
    parser.add_argument("--eval", action="store_true", help="time the evaluation pipelines instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    roots = [args.root]
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.upscale:
            w, h = (int(v) for v in size.split("x"))
            roots.append(upscaled_copy(args.root, Path(tmp) / f"upscaled-{w}x{h}", (w, h)))
        if args.photos:
            roots.append(photo_tree(args.photos, Path(tmp) / "photos"))
        for root in roots:
            bench(
                root,
                train=not args.eval,
                batch_size=args.batch_size,
                images=args.images,
                repeats=args.repeats,
            )


if __name__ == "__main__":
    main()
