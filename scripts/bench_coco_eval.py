"""Time COCO box evaluation on a val2017-sized synthetic set: pycocotools vs cvtrain's evaluator (faster-coco-eval).

    PYTHONPATH=. python scripts/bench_coco_eval.py                 # 5,000 images, ~37k boxes, ~312k detections
    PYTHONPATH=. python scripts/bench_coco_eval.py --images 500    # a quicker look

Every timing is evaluate + accumulate + summarize, from the detections in memory (loadRes included), on one CPU
core (the process is pinned to its first allowed core); the process's CPU time is printed beside the wall time, as
it holds on a shared, loaded machine. `cvtrain evaluator` is `COCOEvaluator.compute()` after the
detections went through `update`, i.e. what every evaluation of a `cvtrain fit` pays; `faster-coco-eval` alone
is the library run on the results list directly. The 12 stats of both are
printed with their largest difference (see cvtrain/metrics/coco.py for why it is not always exactly 0).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch

from cvtrain.contracts.batch import Batch
from cvtrain.data.coco import coco_api_from_dict
from cvtrain.metrics.coco import COCO_METRICS, COCOEvaluator, run_cocoeval
from cvtrain.metrics.synthetic_coco import SyntheticCOCO, synthetic_coco


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs of each")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)

    started = time.perf_counter()
    gt, results = synthetic_coco(SyntheticCOCO(images=args.images), seed=args.seed)
    boxes = sum(not a["iscrowd"] for a in gt["annotations"])
    print(
        f"{len(gt['images'])} images, {boxes} boxes (+{len(gt['annotations']) - boxes} crowd), "
        f"{len(results)} detections, {len(gt['categories'])} categories "
        f"(generated in {time.perf_counter() - started:.1f} s)"
    )

    evaluator = COCOEvaluator(
        coco_gt=coco_api_from_dict(gt), label_to_cat_id={i: c["id"] for i, c in enumerate(gt["categories"])}
    )
    label_of = {c["id"]: i for i, c in enumerate(gt["categories"])}
    per_image: dict[int, list[dict]] = defaultdict(list)
    for r in results:
        per_image[r["image_id"]].append(r)
    for image in gt["images"]:
        found = per_image[image["id"]]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in found)]
        prediction = {
            "boxes": torch.tensor(xyxy, dtype=torch.float64).reshape(-1, 4),
            "scores": torch.tensor([r["score"] for r in found], dtype=torch.float64),
            "labels": torch.tensor([label_of[r["category_id"]] for r in found], dtype=torch.int64),
        }
        evaluator.update(Batch(images=[], targets=[], meta=[{"image_id": image["id"]}]), [prediction])

    def best_of(run):  # noqa: ANN001, ANN202
        """(wall seconds, CPU seconds of this process, value) of the fastest of `repeats` runs."""
        times, value = [], None
        for _ in range(args.repeats):
            start, cpu = time.perf_counter(), time.process_time()
            value = run()
            times.append((time.perf_counter() - start, time.process_time() - cpu))
        return (*min(times), value)

    reference_gt = coco_api_from_dict(gt)
    slow, slow_cpu, reference = best_of(lambda: run_cocoeval(reference_gt, results, backend="pycocotools"))
    direct, direct_cpu, _ = best_of(lambda: run_cocoeval(reference_gt, results, backend="faster"))
    fast, fast_cpu, ours = best_of(evaluator.compute)
    stats = [float(v) for v in reference.stats]
    diff = max(abs(a - b) for a, b in zip(stats, ours.values(), strict=True))
    for name, a, b in zip(COCO_METRICS, stats, ours.values(), strict=True):
        print(f"  {name:<11} pycocotools {a:.16f}  cvtrain {b:.16f}")
    print(f"largest difference of the 12 stats: {diff:.3g}")
    print(f"load average {os.getloadavg()[0]:.1f}; wall time (CPU time of the process)")
    print(f"pycocotools      {slow:7.2f} s ({slow_cpu:.2f} s)")
    print(
        f"faster-coco-eval {direct:7.2f} s ({direct_cpu:.2f} s)   the library alone, from the same results list"
    )
    print(
        f"cvtrain (faster) {fast:7.2f} s ({fast_cpu:.2f} s)   {slow / fast:.1f}x ({slow_cpu / fast_cpu:.1f}x) faster"
    )


if __name__ == "__main__":
    main()
