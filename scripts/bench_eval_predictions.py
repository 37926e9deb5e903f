"""Time scoring a COCO results file end to end: `cvtrain eval data=coco data.val_ann=GT predictions=DT` against
pycocotools' own evaluation script (COCO(GT), loadRes(DT), COCOeval evaluate / accumulate / summarize), both
reading the same two files from disk, on a val2017-sized synthetic set (5,000 images, ~37k boxes, ~312k
detections: cvtrain/metrics/synthetic_coco.py).

    PYTHONPATH=. python scripts/bench_eval_predictions.py                   # writes /tmp/coco_eval_bench/{gt,dt}.json
    PYTHONPATH=. python scripts/bench_eval_predictions.py --images 500      # a quicker look

Each side runs as a fresh process (`python -m cvtrain.cli eval ...` as a user types it, and a `python -c` of the
pycocotools script), pinned to one CPU core; the wall time of each is the best of `--repeats`. Both print the
12 stats; the script checks they agree to 1e-12.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cvtrain.metrics.synthetic_coco import SyntheticCOCO, synthetic_coco

PYCOCOTOOLS = """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
evaluation = COCOeval(gt, gt.loadRes(sys.argv[2]), "bbox")
evaluation.evaluate(); evaluation.accumulate(); evaluation.summarize()
print(json.dumps([float(v) for v in evaluation.stats]))
"""


def write_files(folder: Path, images: int, seed: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    gt_file, dt_file = folder / f"gt_{images}_{seed}.json", folder / f"dt_{images}_{seed}.json"
    if not (gt_file.is_file() and dt_file.is_file()):
        gt, results = synthetic_coco(SyntheticCOCO(images=images), seed=seed)
        gt_file.write_text(json.dumps(gt))
        dt_file.write_text(json.dumps(results))
    return gt_file, dt_file


def timed(command: list[str], repeats: int, cwd: Path) -> tuple[float, str]:
    """(best wall seconds, stdout of the last run) of `command` pinned to one core."""
    core = str(min(os.sched_getaffinity(0)))
    best, out = float("inf"), ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(["taskset", "-c", core, *command], capture_output=True, text=True, cwd=cwd)
        best = min(best, time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
        out = proc.stdout
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/coco_eval_bench"))
    args = parser.parse_args()
    gt_file, dt_file = write_files(args.folder, args.images, args.seed)
    run_dir = args.folder / "run"
    env_python = sys.executable
    ours, _ = timed(
        [env_python, "-m", "cvtrain.cli", "eval", "data=coco", f"data.val_ann={gt_file}",
         f"predictions={dt_file}", f"hydra.run.dir={run_dir}"],
        args.repeats, Path.cwd(),
    )  # fmt: skip
    reference, out = timed(
        [env_python, "-c", PYCOCOTOOLS, str(gt_file), str(dt_file)], args.repeats, Path.cwd()
    )
    stats = json.loads(out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]  # fmt: skip
    diff = max(abs(results[n] - s) for n, s in zip(names, stats, strict=True))
    print(
        f"{gt_file} ({gt_file.stat().st_size / 1e6:.0f} MB), {dt_file} ({dt_file.stat().st_size / 1e6:.0f} MB)"
    )
    print(f"pycocotools' script      {reference:7.2f} s")
    print(
        f"cvtrain eval predictions= {ours:7.2f} s  {reference / ours:4.1f}x  largest stat difference {diff:.3g}"
    )


if __name__ == "__main__":
    main()
