"""How much does cvtrain's training loop cost next to the model itself?

Compares the time of an optimizer step in (a) a bare PyTorch loop (forward, cross-entropy, backward, SGD step on one
fixed batch already on the device) and (b) `cvtrain fit data=synthetic` (in memory, no decoding), with the same
model, batch size, image size and optimizer settings, in one process. The two take turns inside the cvtrain run:
after every `--segment` cvtrain steps the loop is paused and the bare loop runs as many steps. A cvtrain segment is
timed from the start of its first step to the start of the step after its last, so it holds everything the loop does
per step (fetching and collating the batch, the transfer, the loss meter, the scheduler) and one log line
(`trainer.log_every` is set to the segment, more often than the default). Set-up comes before the first segment, and
the run is stopped after the last one, before its evaluation and checkpoint.

Each cvtrain segment is compared with the mean of the bare segments just before and after it, seconds apart, so a
machine whose speed drifts (a shared or virtual CPU: step times there wander by 10-20 % over a minute) moves both
sides; the overhead is the median ratio. On a GPU the device is synchronised at the ends of each segment only, and
data workers keep loading while the bare loop runs, so a cvtrain segment may start with batches loaded off the
clock: that matters only where loading, not the GPU, is the bottleneck.

On the CPU, cvtrain's set-up has malloc keep the memory it frees (`cvtrain.host_memory`). That holds for the
whole process, so the bare loop, which first runs after the set-up, keeps its memory too: the figure compares the
loops, not the allocators. `scripts/bench_host_memory.py` measures what the setting gains on its own.

    .venv/bin/python scripts/bench_loop.py --model resnet18 --image-size 64 --batch-size 32 --device cpu
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from cvtrain.commands.fit import run_fit
from cvtrain.config.compose import compose_config, config_composer
from cvtrain.engine import loop


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class BareLoop:
    """Forward, cross-entropy, backward and an SGD step on one fixed batch already on the device."""

    def __init__(self, model_name: str, image_size: int, batch_size: int, device: str):
        self.device = device
        self.model = torchvision.models.get_model(model_name, num_classes=10).to(device)
        # the same optimizer settings as the cvtrain run's
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(batch_size, 3, image_size, image_size, device=device)
        self.y = torch.randint(10, (batch_size,), device=device)

    def seconds(self, steps: int) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(self.x), self.y).backward()
            self.opt.step()
        synchronize(self.device)
        return time.perf_counter() - start


class TimedEnough(Exception):
    """Ends the cvtrain run after its last segment: its evaluation and checkpoint are not timed."""


class TakingTurns:
    """Called at the start of each cvtrain step. After `warmup` steps it runs a bare segment, then closes a cvtrain
    segment every `segment` steps and runs a bare one after it. Each cvtrain segment is compared with the mean of the
    bare segments on either side of it, so a steady drift of the machine's speed cancels out."""

    def __init__(self, bare: BareLoop, *, warmup: int, segment: int, segments: int):
        self.bare, self.warmup, self.segment, self.segments = bare, warmup, segment, segments
        self.bare_seconds: list[float] = []  # per step, segments + 1 of them
        self.ours_seconds: list[float] = []  # per step, `segments` of them
        self.steps = 0
        self.started = 0.0

    @property
    def steps_needed(self) -> int:  # the last one is stopped at its start
        return self.warmup + self.segment * self.segments + 1

    @property
    def pairs(self) -> list[tuple[float, float]]:
        """(bare, cvtrain) seconds per step: each cvtrain segment with the bare segments before and after it."""
        around = [(a + b) / 2 for a, b in itertools.pairwise(self.bare_seconds)]
        return list(zip(around, self.ours_seconds, strict=True))

    def before_step(self) -> None:
        n, self.steps = self.steps - self.warmup, self.steps + 1
        if n < 0 or n % self.segment:
            return
        synchronize(self.bare.device)
        if n == 0:
            self.bare.seconds(self.warmup)  # the bare loop's warm-up, outside every segment
        else:
            self.ours_seconds.append((time.perf_counter() - self.started) / self.segment)
        self.bare_seconds.append(self.bare.seconds(self.segment) / self.segment)
        if len(self.ours_seconds) == self.segments:
            raise TimedEnough
        self.started = time.perf_counter()


def take_turns(
    turns: TakingTurns, model_name: str, image_size: int, batch_size: int, device: str, workers: int
) -> None:
    overrides = [
        f"model={model_name}",
        "data=synthetic",
        f"data.image_size={image_size}",
        f"data.batch_size={batch_size}",
        f"data.length={batch_size * turns.steps_needed}",
        "trainer.epochs=1",
        f"trainer.device={device}",
        f"data.num_workers={workers}",
        "trainer.precision=32",
        "logger=[csv]",
        # one log line (a read of the losses: a GPU sync) in every segment, more often than the default 20 steps
        f"trainer.log_every={turns.segment}",
        "sched=constant",
        "sched.warmup_epochs=0",
        "optim.lr=0.01",
        "optim.weight_decay=0",
    ]
    with config_composer():
        cfg = compose_config(overrides)
    train_step = loop.train_step

    def timed_train_step(*args, **kwargs):  # the loop looks `train_step` up in its module at every step
        turns.before_step()
        return train_step(*args, **kwargs)

    loop.train_step = timed_train_step
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            run_fit(cfg, Path(run_dir), overrides=[])
    except TimedEnough:
        return
    finally:
        loop.train_step = train_step
    raise RuntimeError(f"the cvtrain run ended after {turns.steps} steps, {turns.steps_needed} expected")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed steps of each loop before the first segment"
    )
    parser.add_argument(
        "--segment", type=int, default=5, help="steps of one loop before the other takes its turn"
    )
    parser.add_argument(
        "--segments", type=int, default=40, help="turns of each loop; the median ratio is reported"
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
    torch.backends.cudnn.benchmark = True  # as cvtrain's set-up does
    shape = (args.model, args.image_size, args.batch_size, args.device)
    turns = TakingTurns(BareLoop(*shape), warmup=args.warmup, segment=args.segment, segments=args.segments)
    take_turns(turns, *shape, workers)

    pairs = turns.pairs
    bare = statistics.median(b for b, _ in pairs)
    ours = statistics.median(c for _, c in pairs)
    ratios = sorted(c / b - 1 for b, c in pairs)
    quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    print(
        f"model={args.model} image={args.image_size}px batch={args.batch_size} device={args.device} "
        f"cvtrain data.num_workers={workers}; {args.segments} segments of {args.segment} steps each"
    )
    print(
        "each segment, bare / cvtrain ms:",
        ", ".join(f"{b * 1e3:.1f} / {c * 1e3:.1f}" for b, c in pairs),
    )
    print(f"bare PyTorch step:  {bare * 1e3:8.1f} ms  ({args.batch_size / bare:7.1f} img/s), median")
    print(f"cvtrain fit step:   {ours * 1e3:8.1f} ms  ({args.batch_size / ours:7.1f} img/s), median")
    print(
        f"overhead: {100 * statistics.median(ratios):+.1f}% (median segment; half of them between "
        f"{100 * quartiles[0]:+.1f}% and {100 * quartiles[2]:+.1f}%, all between {100 * ratios[0]:+.1f}% and "
        f"{100 * ratios[-1]:+.1f}%)"
    )


if __name__ == "__main__":
    main()
