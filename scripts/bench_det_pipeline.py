"""Milliseconds per training sample of the detection pipeline (`aug=detection`) on 640 x 640 shapes scenes, one
thread, in this process: reading/decoding the scene plus the transforms, as a DataLoader worker spends them.

The first run writes the scenes into `--cache` (not timed: a warm-up pass reads every sample once). Alternate
checkouts to compare them on a loaded machine, and note `uptime`:

    PYTHONPATH=. CVTRAIN_FIXTURES=../shared/fixtures .venv/bin/python scripts/bench_det_pipeline.py --repeat 3

`--threads 2` (the default torch threads of a 2-core machine) shows what oversubscription costs on a loaded machine:
torchvision's float kernels spread over the busy cores (main: ~470 ms/sample at load 2.3, against ~30-45 with one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from cvtrain.composition import build_setup
from tests.conftest import compose_config


def train_split(cache: str, images: int):
    cfg = compose_config(
        "model=faster_rcnn", "data=shapes", f"data.cache_dir={cache}", "data.seed=0", "data.scene_size=640",
        f"data.train_images={images}", "data.val_images=8", "aug=detection", "trainer.device=cpu",
    )  # fmt: skip
    return build_setup(cfg, need_train=True).data.train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", default="/tmp/detshapes")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--samples", type=int, default=64, help="samples timed per repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (DataLoader workers use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = train_split(args.cache, args.images)
    for index in range(len(dataset)):  # warm-up: generate/cache the scenes, page cache
        dataset[index]
    torch.manual_seed(0)
    per_sample = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for index in range(args.samples):
            dataset[index % len(dataset)]
        per_sample.append(1000 * (time.perf_counter() - start) / args.samples)
    load = os.getloadavg()[0]
    print(f"ms/sample: median {statistics.median(per_sample):.1f} runs {[round(v, 1) for v in per_sample]} "
          f"(load {load:.2f}, {args.threads} threads, {type(dataset).__name__})")  # fmt: skip


if __name__ == "__main__":
    main()
