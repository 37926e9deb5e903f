"""How much does cvtrain's training loop cost next to the model itself?

Measures the time per optimizer step of (a) a bare PyTorch loop (forward, cross-entropy, backward, SGD step on one
fixed batch) and (b) `cvtrain fit data=synthetic` (in memory, no decoding) with the same model, batch size and image size. The cvtrain figure
is differential: two runs over the same epoch of 2 x `--steps` batches, one stopped after `--steps` steps
(`trainer.max_steps`), so set-up, the evaluation and the checkpoint write cancel out. Both loops take `--repeats`
turns and the medians are compared.

    .venv/bin/python scripts/bench_loop.py --model resnet18 --image-size 64 --batch-size 32 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from cvtrain.commands.fit import run_fit
from cvtrain.config.compose import compose_config, config_composer


def bare_step_time(model_name: str, image_size: int, batch_size: int, device: str, steps: int) -> float:
    model = torchvision.models.get_model(model_name, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # the same optimizer settings as below
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    y = torch.randint(10, (batch_size,), device=device)
    for i in range(steps + 3):
        if i == 3:  # warm-up steps excluded
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def cvtrain_seconds(
    model_name: str,
    image_size: int,
    batch_size: int,
    device: str,
    steps: int,
    max_steps: int,
    workers: int = 0,
) -> float:
    """Seconds of a whole `cvtrain fit` that stops after `max_steps` of an epoch of `steps` batches: one set-up, one
    evaluation and one checkpoint whatever `max_steps` is, so two runs differ only by their training steps."""
    overrides = [
        f"model={model_name}",
        "data=synthetic",
        f"data.image_size={image_size}",
        f"data.batch_size={batch_size}",
        f"data.length={batch_size * steps}",
        "trainer.epochs=1",
        f"trainer.max_steps={max_steps}",
        f"trainer.device={device}",
        f"data.num_workers={workers}",
        "trainer.precision=32",
        "logger.tensorboard=false",
        "logger.progress=false",
        "trainer.log_every=1000000",
        "sched=constant",
        "sched.warmup_epochs=0",
        "optim.lr=0.01",
        "optim.weight_decay=0",
    ]
    with config_composer():
        cfg = compose_config(overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_fit(cfg, Path(run_dir))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="turns of both loops; medians are reported")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="cvtrain's data workers (default: 0 on the CPU, where they would take the model's cores; 2 on a GPU, "
        "where loading and collating in the training process would hold up the asynchronous GPU steps)",
    )
    args = parser.parse_args()
    workers = args.num_workers if args.num_workers is not None else (0 if args.device == "cpu" else 2)
    common = (args.model, args.image_size, args.batch_size, args.device)
    # Discarded: the first run in a process pays one-off costs (6 s of a 20 s run measured on the CPU) that the
    # 2-epoch run would not, and the difference would then make cvtrain look faster than the bare loop.
    cvtrain_seconds(*common, steps=2 * args.steps, max_steps=args.steps, workers=workers)
    bares, per_steps = [], []
    for _ in range(args.repeats):  # taking turns, so a change in the machine's load falls on both loops
        bares.append(bare_step_time(*common, steps=args.steps))
        short = cvtrain_seconds(*common, steps=2 * args.steps, max_steps=args.steps, workers=workers)
        long = cvtrain_seconds(*common, steps=2 * args.steps, max_steps=2 * args.steps, workers=workers)
        # Same set-up, evaluation and checkpoint in both: the difference is `steps` training steps.
        per_steps.append((long - short) / args.steps)
    bare, per_step = statistics.median(bares), statistics.median(per_steps)
    print(
        f"model={args.model} image={args.image_size}px batch={args.batch_size} device={args.device} "
        f"cvtrain data.num_workers={workers}"
    )
    print(
        "each turn, bare / cvtrain ms:",
        ", ".join(f"{b * 1e3:.1f} / {c * 1e3:.1f}" for b, c in zip(bares, per_steps, strict=True)),
    )
    print(f"bare PyTorch step:  {bare * 1e3:8.1f} ms  ({args.batch_size / bare:7.1f} img/s)")
    print(f"cvtrain fit step:   {per_step * 1e3:8.1f} ms  ({args.batch_size / per_step:7.1f} img/s)")
    print(f"overhead: {100 * (per_step / bare - 1):+.1f}%")


if __name__ == "__main__":
    main()
