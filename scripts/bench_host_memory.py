"""What keeping freed memory in the process (`cvtrain.host_memory`) gains a training step on the CPU.

Runs `bench_loop.py`'s bare PyTorch loop (forward, cross-entropy, backward, SGD with momentum on one fixed batch) in fresh
child processes, in turns: one with glibc's malloc as it comes, one after `keep_freed_memory`, as cvtrain sets it up
for `trainer.device=cpu`. A fresh process for each, because the setting cannot be undone in a process. Prints each
process's median step time, page faults per step and peak resident memory, and the median of the pairs' ratios.

    .venv/bin/python scripts/bench_host_memory.py --model resnet18 --image-size 64 --batch-size 32 --pairs 4
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys

import torch
from bench_loop import BareLoop  # scripts/, the first entry of sys.path

from cvtrain.host_memory import has_glibc_malloc, keep_freed_memory, user_malloc_settings

WARM_STEPS = 3


def child(model_name: str, image_size: int, batch_size: int, steps: int, keep: bool) -> dict[str, float]:
    if keep and not keep_freed_memory(torch.device("cpu")):
        raise SystemExit("keep_freed_memory refused: see its module's log")
    torch.manual_seed(0)
    bare = BareLoop(model_name, image_size, batch_size, "cpu")
    seconds, faults = [], []
    for _ in range(steps):
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds.append(bare.seconds(1))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
    warm = slice(WARM_STEPS, None)  # the first steps allocate for the first time either way
    return {
        "step_s": statistics.median(seconds[warm]),
        "faults_per_step": statistics.median(faults[warm]),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--steps", type=int, default=23, help="steps per process; the first 3 are not counted"
    )
    parser.add_argument("--pairs", type=int, default=4, help="pairs of processes, default malloc then kept")
    parser.add_argument("--child", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps <= WARM_STEPS:
        parser.error(f"--steps must be more than the {WARM_STEPS} steps that are not counted")
    shape = (args.model, args.image_size, args.batch_size, args.steps)
    if not args.child and not has_glibc_malloc():
        raise SystemExit("keep_freed_memory does nothing here: malloc is not glibc's")
    if not args.child and (setting := user_malloc_settings()) is not None:
        raise SystemExit(
            f"keep_freed_memory does nothing here: {setting} sets malloc up; unset it to compare"
        )
    if args.child:
        print(json.dumps(child(*shape, keep=args.child == "kept")))
        return

    def run(mode: str) -> dict[str, float]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--model",
            args.model,
            "--image-size",
            str(args.image_size),
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the {mode} process failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout)

    print(
        f"model={args.model} image={args.image_size}px batch={args.batch_size}, {args.steps} steps per process"
    )
    ratios = []
    for pair in range(args.pairs):
        default, kept = run("default"), run("kept")
        ratios.append(kept["step_s"] / default["step_s"] - 1)
        for name, r in (("default malloc", default), ("freed memory kept", kept)):
            print(
                f"  pair {pair + 1}, {name:18s} {r['step_s'] * 1e3:8.1f} ms/step  "
                f"{r['faults_per_step']:8.0f} page faults/step  peak {r['peak_rss_mib']:6.0f} MiB"
            )
    print(
        f"kept against default: {100 * statistics.median(ratios):+.1f}% step time (median of {args.pairs} pairs; "
        f"{', '.join(f'{100 * r:+.1f}%' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
