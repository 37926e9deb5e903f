"""Time COCO box evaluation on a val2017-sized synthetic set: pycocotools vs cvtrain's evaluator (faster-coco-eval).

    PYTHONPATH=. python scripts/bench_coco_eval.py                 # 5,000 images, ~37k boxes, ~312k detections
    PYTHONPATH=. python scripts/bench_coco_eval.py --images 500    # a quicker look

Every timing is evaluate + accumulate + summarize, from the detections in memory (loadRes included), on one CPU
core (the process is pinned to its first allowed core); the process's CPU time is printed beside the wall time, as
it holds on a shared, loaded machine. `pycocotools` and `faster-coco-eval` are each library used as its README
shows (`COCO.loadRes`, `COCOeval(...)`, evaluate, accumulate, summarize), on the results list directly;
`cvtrain` is `COCOEvaluator.compute()` after the detections went through `update`, i.e. what every evaluation of
a `cvtrain fit` pays, with each backend. The 12 stats of each are compared with pycocotools' (see
cvtrain/metrics/coco.py for why the C++ backend's are not always exactly equal).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections import defaultdict

import torch
from faster_coco_eval import COCO as FasterCOCO
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cvtrain.contracts.batch import Batch
from cvtrain.data.annotations.coco_api import coco_api_from_dict
from cvtrain.metrics.coco import COCO_METRICS, COCOEvaluator
from cvtrain.metrics.synthetic_coco import SyntheticCOCO, synthetic_coco


def library_alone(evaluator_class: type, coco_gt: COCO, results: list[dict]) -> list[float]:
    """The 12 stats of `results` by one library's COCOeval, called as its documentation shows."""
    with contextlib.redirect_stdout(io.StringIO()):  # both print progress
        evaluation = evaluator_class(coco_gt, coco_gt.loadRes([dict(r) for r in results]), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats]


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
    faster_gt = FasterCOCO(reference_gt.dataset)
    pycocotools_evaluator = COCOEvaluator(
        coco_gt=reference_gt, label_to_cat_id=evaluator.label_to_cat_id, backend="pycocotools"
    )
    pycocotools_evaluator.merge(evaluator)
    runs = {
        "pycocotools": lambda: library_alone(COCOeval, reference_gt, results),
        "faster-coco-eval": lambda: library_alone(COCOeval_faster, faster_gt, results),
        "cvtrain (faster)": lambda: list(evaluator.compute().values()),
        "cvtrain (pycocotools)": lambda: list(pycocotools_evaluator.compute().values()),
    }
    timed = {name: best_of(run) for name, run in runs.items()}
    reference = timed["pycocotools"][2]
    for i, name in enumerate(COCO_METRICS):
        row = "  ".join(
            f"{label} {value[2][i]:.16f}" for label, value in timed.items() if label != "pycocotools"
        )
        print(f"  {name:<11} pycocotools {reference[i]:.16f}  {row}")
    print(
        f"load average {os.getloadavg()[0]:.1f}; wall time (CPU time of the process), best of {args.repeats}"
    )
    slow, slow_cpu, _ = timed["pycocotools"]
    for name, (wall, cpu, stats) in timed.items():
        diff = max(abs(a - b) for a, b in zip(stats, reference, strict=True))
        print(
            f"{name:<22} {wall:7.2f} s ({cpu:6.2f} s)  {slow / wall:5.1f}x ({slow_cpu / cpu:.1f}x)"
            f"  largest difference to pycocotools {diff:.3g}"
        )


if __name__ == "__main__":
    main()
