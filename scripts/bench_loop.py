"""How much does cvtrain's training loop cost next to the model itself?

Times an optimizer step of (a) a bare PyTorch loop (forward, cross-entropy, backward, SGD step on one fixed batch
already on the device) and (b) `cvtrain fit data=synthetic` (in memory, no decoding) with the same model, batch size,
image size and optimizer settings. Both are timed the same way, inside the loop: a clock reading at the start of
every step, and the time from the start of step `--warmup` to the start of the last step, divided by the steps in
between. That span holds everything the loop does per step (fetching and collating the batch, the transfer, the
loss meter, the scheduler, logging) and nothing it does once: set-up comes before it, and the cvtrain run is stopped
at the last reading, before its evaluation and checkpoint. On a GPU the device is synchronised at those two
readings only. Both loops take `--repeats` turns, alternating; the overhead is the median of the turns' ratios.

    .venv/bin/python scripts/bench_loop.py --model resnet18 --image-size 64 --batch-size 32 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from cvtrain.commands.fit import run_fit
from cvtrain.config.compose import compose_config, config_composer
from cvtrain.engine import loop


class TimedEnough(Exception):
    """Ends a `cvtrain fit` once the clock has its readings: its evaluation and checkpoint are not timed."""


class StepClock:
    """Clock readings at the start of each step; the device is synchronised before the two that bound the span."""

    def __init__(self, device: str, warmup: int, steps: int):
        self.cuda = device.startswith("cuda")
        self.bounds = (warmup, steps - 1)
        self.readings: list[float] = []

    def tick(self) -> None:
        if self.cuda and len(self.readings) in self.bounds:
            torch.cuda.synchronize()
        self.readings.append(time.perf_counter())

    @property
    def done(self) -> bool:
        return len(self.readings) > self.bounds[1]

    def seconds_per_step(self) -> float:
        first, last = self.bounds
        if len(self.readings) <= last:
            raise RuntimeError(f"the loop ran {len(self.readings)} steps, {last + 1} expected")
        return (self.readings[last] - self.readings[first]) / (last - first)


def bare_step_time(clock: StepClock, model_name: str, image_size: int, batch_size: int, device: str) -> float:
    torch.backends.cudnn.benchmark = True  # as cvtrain's set-up does
    model = torchvision.models.get_model(model_name, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # the same optimizer settings as below
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    y = torch.randint(10, (batch_size,), device=device)
    for _ in range(clock.bounds[1] + 1):
        clock.tick()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return clock.seconds_per_step()


def cvtrain_step_time(
    clock: StepClock, model_name: str, image_size: int, batch_size: int, device: str, workers: int
) -> float:
    steps = clock.bounds[1] + 1
    overrides = [
        f"model={model_name}",
        "data=synthetic",
        f"data.image_size={image_size}",
        f"data.batch_size={batch_size}",
        f"data.length={batch_size * steps}",
        "trainer.epochs=1",
        f"trainer.device={device}",
        f"data.num_workers={workers}",
        "trainer.precision=32",
        "logger.tensorboard=false",
        "logger.progress=false",
        "sched=constant",
        "sched.warmup_epochs=0",
        "optim.lr=0.01",
        "optim.weight_decay=0",
    ]
    with config_composer():
        cfg = compose_config(overrides)
    train_step = loop.train_step

    def timed_train_step(*args, **kwargs):  # the loop looks `train_step` up in its module at every step
        clock.tick()
        if clock.done:
            raise TimedEnough
        return train_step(*args, **kwargs)

    loop.train_step = timed_train_step
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            run_fit(cfg, Path(run_dir))
    except TimedEnough:
        pass
    finally:
        loop.train_step = train_step
    return clock.seconds_per_step()


def take_turns(measures: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """`repeats` readings of each, taking turns, so a change in the machine's load falls on all of them."""
    readings: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            readings[name].append(measure())
    return readings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per turn, after the warm-up")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each turn")
    parser.add_argument(
        "--repeats", type=int, default=7, help="turns of both loops; the median turn is reported"
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="cvtrain's data workers (default: 0 on the CPU, where they would take the model's cores; 2 on a GPU, "
        "where loading and collating in the training process would hold up the asynchronous GPU steps)",
    )
    args = parser.parse_args()
    workers = args.num_workers if args.num_workers is not None else (0 if args.device == "cpu" else 2)
    shape = (args.model, args.image_size, args.batch_size, args.device)

    def clock() -> StepClock:
        # steps + 1 readings: the last one starts the step after the timed span
        return StepClock(args.device, args.warmup, args.warmup + args.steps + 1)

    readings = take_turns(
        {
            "bare": lambda: bare_step_time(clock(), *shape),
            "cvtrain": lambda: cvtrain_step_time(clock(), *shape, workers),
        },
        args.repeats,
    )
    bare, ours = statistics.median(readings["bare"]), statistics.median(readings["cvtrain"])
    turns = list(zip(readings["bare"], readings["cvtrain"], strict=True))
    # Each turn's ratio compares two runs taken back to back, so a machine that slows down over the whole
    # benchmark (seen on the shared CPU) moves both sides of it.
    overheads = [c / b - 1 for b, c in turns]
    print(
        f"model={args.model} image={args.image_size}px batch={args.batch_size} device={args.device} "
        f"cvtrain data.num_workers={workers} steps={args.steps} after {args.warmup} warm-up"
    )
    print("each turn, bare / cvtrain ms:", ", ".join(f"{b * 1e3:.1f} / {c * 1e3:.1f}" for b, c in turns))
    print("each turn's overhead:", ", ".join(f"{100 * o:+.1f}%" for o in overheads))
    print(f"bare PyTorch step:  {bare * 1e3:8.1f} ms  ({args.batch_size / bare:7.1f} img/s), median")
    print(f"cvtrain fit step:   {ours * 1e3:8.1f} ms  ({args.batch_size / ours:7.1f} img/s), median")
    print(f"overhead: {100 * statistics.median(overheads):+.1f}% (median of the turns)")


if __name__ == "__main__":
    main()
