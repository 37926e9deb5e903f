"""Milliseconds per training sample of the `aug=yolo` input pipeline (mosaic, letterbox, HSV jitter, random
scale/translate, flips) on one CPU core, the way a DataLoader worker produces them: `dataset[i]` of the training
split that `cvtrain fit` builds (`build_data`), with `torch.set_num_threads(1)` as in a worker.

It uses only what every version of cvtrain has, so the same script measures any checkout: put that checkout first
on PYTHONPATH, e.g. before/after a change, alternating:

    for code in /work/main /work/yolopipe /work/main /work/yolopipe; do
        PYTHONPATH=$code .venv/bin/python scripts/bench_yolo_pipeline.py --cache-dir /tmp/yoloshapes
    done

The figures are CPU seconds of this process (`time.process_time`, so other jobs on a shared machine count less)
and wall seconds; `decode` is the four `dataset.dataset[i]` reads a mosaic makes (JPEG decode and targets), the
rest is augmentation. `--profile` prints cProfile's top functions. `--workers N` instead measures images per second
through a DataLoader with N worker processes (batches of 32, as `cvtrain bench` on a GPU machine would feed them).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import torch

import cvtrain
from cvtrain.config import to_typed
from cvtrain.config.compose import compose_config, config_composer
from cvtrain.data.splits import build_data


def training_dataset(args: argparse.Namespace) -> torch.utils.data.Dataset:
    overrides = [
        "model=yolo",
        "model.size=s",
        "data=shapes",
        f"data.scene_size={args.scene_size}",
        f"data.cache_dir={args.cache_dir}",
        f"data.train_images={args.train_images}",
        "data.val_images=8",
        "aug=yolo",
        "aug.close_mosaic=0",
        "trainer.device=cpu",
        *args.overrides,
    ]
    with config_composer():
        cfg = to_typed(compose_config(overrides))
    return build_data(cfg.data, cfg.aug, task=cfg.model.task, need_train=True).train


def timed(fn, count: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call of fn(i) for i < count."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.process_time() - cpu) * 1000 / count, (time.perf_counter() - wall) * 1000 / count


def loader_rate(dataset: torch.utils.data.Dataset, workers: int, batches: int) -> float:
    """Images per second through a DataLoader of `workers` processes (after one warm-up batch per worker)."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=32, shuffle=True, num_workers=workers, collate_fn=list, persistent_workers=True
    )
    count, counted, start = 0, 0, 0.0
    while count < (batches + workers) * 32:
        for batch in loader:
            count += len(batch)
            if not start and count >= workers * 32:
                start, counted = time.perf_counter(), count
            if count >= (batches + workers) * 32:
                break
    return (count - counted) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache-dir", default="/tmp/yoloshapes")
    parser.add_argument("--scene-size", type=int, default=640)
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--samples", type=int, default=64, help="samples per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader images/s with this many workers")
    parser.add_argument("--batches", type=int, default=20, help="batches timed with --workers")
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. aug.mosaic=0")
    args = parser.parse_args()
    dataset = training_dataset(args)
    if args.workers:
        rate = loader_rate(dataset, args.workers, args.batches)
        print(f"code: {cvtrain.__file__}\n{rate:.0f} images/s with {args.workers} workers")
        return
    torch.set_num_threads(1)
    n = len(dataset)
    base = getattr(dataset, "dataset", dataset)  # the images a mosaic reads, before any transform
    torch.manual_seed(0)
    for i in range(8):  # warm-up: page cache, allocator, lazy imports
        dataset[i % n]
    sample_ms, decode_ms = [], []
    for r in range(args.rounds):
        sample_ms.append(timed(lambda i, r=r: dataset[(r * args.samples + i) % n], args.samples))
        decode_ms.append(timed(lambda i: [base[(i + k) % n] for k in range(4)], args.samples // 4))
    cpu = statistics.median(s[0] for s in sample_ms)
    wall = statistics.median(s[1] for s in sample_ms)
    decode = statistics.median(d[0] for d in decode_ms) if base is not dataset else float("nan")  # no mosaic
    image = dataset[0][0]
    print(f"code: {cvtrain.__file__}")
    print(
        f"sample: {tuple(image.shape)} {image.dtype}; {n} images of {args.scene_size} px; {args.overrides or ''}"
    )
    print(
        f"ms per training sample (median of {args.rounds} x {args.samples}): {cpu:.1f} CPU, {wall:.1f} wall; "
        f"of which decoding the 4 images {decode:.1f} CPU; rounds (CPU): "
        + " ".join(f"{s[0]:.1f}" for s in sample_ms)
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [dataset[i % n] for i in range(args.samples)])
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
