"""`cvtrain data check data=... [data.root=...]`: read everything a run would read, without training.

The splits are built as `fit` builds them (every annotation file parsed and checked by the shared annotation
checks, collecting every problem instead of stopping at the first), then every image of both splits is decoded
through a DataLoader with `data.num_workers` workers, without augmentation (masks are checked against their image
on the way). The report counts images and objects per split and per class and lists every problem with its file
and what `fit` would do with it; `data_check.json` in the run directory holds the same. Any problem other than a
clipped box (or an empty class folder that data.allow_empty_classes=true keeps) exits non-zero.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.progress import track
from rich.table import Table
from rich.text import Text
from torch.utils.data import DataLoader, Dataset

from cvtrain.config import Config, to_typed
from cvtrain.config.data import OnBadAnnotation
from cvtrain.contracts.batch import BadSample
from cvtrain.contracts.datasets import TransformsImages, TransformsSamples
from cvtrain.contracts.ground_truth import DetectionGroundTruth
from cvtrain.data.annotations import checks as annotation_checks
from cvtrain.data.decoding.palette import IGNORE_INDEX
from cvtrain.data.splits import build_data
from cvtrain.data.transforms.mosaic import MosaicDataset
from cvtrain.engine.reporting import console, log, show, write_json
from cvtrain.errors import DataError
from cvtrain.workers import worker_init_fn

OBJECT_TASKS = ("detection", "instance_segmentation")  # counted per object as well as per image
BATCH = 16  # samples summarised per worker call
FIT_ACTIONS = {"error": "stops the run", "skip": "skipped"}  # by data.on_bad_annotation / data.on_bad_image
PASSING = ("clipped", "kept")  # what fit uses anyway: a box clamped to its image, an allowed empty class


@dataclass(frozen=True)
class Seen:
    """What one decoded sample holds: its classes, one entry per object for detection (none: a background)."""

    classes: tuple[int, ...]


def summarise(samples: list[Any]) -> list[Seen | BadSample]:
    """The DataLoader's collate: runs in the workers, so only these small summaries cross processes."""
    seen: list[Seen | BadSample] = []
    for sample in samples:
        if isinstance(sample, BadSample):
            seen.append(sample)
            continue
        target = sample[1]
        if isinstance(target, dict):  # detection: one label per object
            classes = target["labels"].tolist()
        elif isinstance(target, torch.Tensor) and target.ndim >= 2:  # segmentation: the classes present
            classes = [c for c in target.unique().tolist() if c != IGNORE_INDEX]
        else:  # classification
            classes = [int(target)]
        seen.append(Seen(tuple(classes)))
    return seen


@dataclass
class SplitCounts:
    images: int = 0
    unreadable: list[BadSample] = field(default_factory=list)
    objects: Counter[int] = field(default_factory=Counter)  # per class (detection)
    images_with: Counter[int] = field(default_factory=Counter)  # per class
    backgrounds: int = 0  # detection images without an object
    difficult: int = 0  # VOC objects flagged `difficult`: in `objects` only with data.use_difficult=true

    def add(self, item: Seen | BadSample) -> None:
        self.images += 1
        if isinstance(item, BadSample):
            self.unreadable.append(item)
            return
        self.objects.update(item.classes)
        self.images_with.update(set(item.classes))
        self.backgrounds += not item.classes


def without_augmentation(dataset: Dataset) -> Dataset:
    """The dataset as stored on disk: decoding is what is checked, and random transforms would only cost time
    and make the counts random (a training split's boxes cropped away)."""
    if isinstance(dataset, MosaicDataset):
        dataset = dataset.dataset  # its own transforms are already None
    if isinstance(dataset, TransformsImages):  # ImageFolder
        dataset.transform = None
    if isinstance(dataset, TransformsSamples):  # the other formats (and ImageFolder's combined view)
        dataset.transforms = None
    return dataset


def decode_split(dataset: Dataset, name: str, num_workers: int) -> SplitCounts:
    # Worker processes take seconds to start: worth it only when there is more to decode than a few batches.
    workers = num_workers if len(dataset) > 8 * BATCH else 0
    dataset = without_augmentation(dataset)
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        num_workers=workers,
        collate_fn=summarise,
        worker_init_fn=worker_init_fn(),
    )
    counts = SplitCounts(difficult=difficult_objects(dataset))
    batches = track(loader, description=f"decoding {name}", console=console, disable=not console.is_terminal)
    for batch in batches:
        for item in batch:
            counts.add(item)
    return counts


def difficult_objects(dataset: Dataset) -> int:
    """How many objects of a split with VOC devkit records are flagged `difficult` (0 for other data)."""
    records = dataset.voc_records() if isinstance(dataset, DetectionGroundTruth) else None
    return int(sum(record.difficult.sum() for record in records or ()))


def run_data_check(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = to_typed(raw_cfg)
    d = cfg.data
    if d.format == "synthetic":
        log.info("data=synthetic: random tensors made in memory, no file to check")
        return {"status": "ok", "data": d.format}
    tasks = d.TASKS or (cfg.model.task,)  # what the format serves (its schema says), else the model's task
    task = cfg.model.task if cfg.model.task in tasks else tasks[0]
    # Read under the skip policy (and keeping empty class folders) so that every problem is collected instead of
    # stopping at the first; the report says what fit does with each under the configured policy.
    collecting = dataclasses.replace(d, on_bad_annotation=OnBadAnnotation.skip)
    if hasattr(d, "allow_empty_classes"):
        collecting = dataclasses.replace(collecting, allow_empty_classes=True)
    checks_log = logging.getLogger(annotation_checks.__name__)
    level = checks_log.level
    checks_log.setLevel(logging.ERROR)  # the report lists every problem: no loader warning repeating them
    try:
        splits = build_data(collecting, aug=cfg.aug, task=task, need_train=True)
    finally:
        checks_log.setLevel(level)
    counts = {
        name: decode_split(dataset, name, d.num_workers)
        for name, dataset in (("train", splits.train), ("val", splits.val))
        if dataset is not None
    }
    rows = problem_rows(cfg, splits, counts)
    errors = [r for r in rows if r["fit"] not in PASSING]
    report = {
        "status": "failed" if errors else "ok",
        "data": d.format,
        "task": task,
        "classes": splits.class_names,
        "splits": {name: split_record(c, splits.class_names, task) for name, c in counts.items()},
        "problems": rows,
    }
    write_json(run_dir / "data_check.json", report)
    show(counts_table(cfg, task, counts))
    show(classes_table(splits.class_names, task, counts))
    if rows:
        show(problems_table(cfg, rows))
    log.info("report in %s", run_dir / "data_check.json")
    if errors:
        raise DataError(
            f"data check: {len(errors)} problem(s) in data={d.format} (listed above and in "
            f"{run_dir / 'data_check.json'}): fix the files, or let fit skip them with data.on_bad_image=skip / "
            "data.on_bad_annotation=skip"
        )
    log.info("data check: no problem in data=%s", d.format)
    return report


def problem_rows(cfg: Config, splits: Any, counts: dict[str, SplitCounts]) -> list[dict[str, str]]:
    """Every problem, with what `fit` does with it under this config: "stops the run", "skipped", "clipped" or
    "kept" (an empty class folder with data.allow_empty_classes=true)."""
    fit_actions = {
        "clipped": "clipped",
        "kept": "kept" if getattr(cfg.data, "allow_empty_classes", False) else FIT_ACTIONS["error"],
    }
    annotation_policy = FIT_ACTIONS[cfg.data.on_bad_annotation.value]
    rows = [
        {
            "file": p.file,
            "where": p.where,
            "what": p.what,
            "fix": p.fix,
            "fit": fit_actions.get(p.action, annotation_policy),
        }
        for p in splits.problems
    ]
    for name, split in counts.items():
        rows += [
            {
                "file": bad.path,
                "where": f"{name} split",
                "what": bad.reason,
                "fix": "fix or remove the file",
                "fit": FIT_ACTIONS[cfg.data.on_bad_image.value],
            }
            for bad in split.unreadable
        ]
    return rows


def split_record(counts: SplitCounts, class_names: list[str], task: str) -> dict[str, Any]:
    per_class = {
        name: {
            "images": counts.images_with[i],
            **({"objects": counts.objects[i]} if task in OBJECT_TASKS else {}),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "images": counts.images,
        "unreadable": len(counts.unreadable),
        **(
            {
                "objects": sum(counts.objects.values()),
                "difficult": counts.difficult,
                "backgrounds": counts.backgrounds,
            }
            if task in OBJECT_TASKS
            else {}
        ),
        "per_class": per_class,
    }


def counts_table(cfg: Config, task: str, counts: dict[str, SplitCounts]) -> Table:
    where = getattr(cfg.data, "root", None)
    table = Table(title=f"data check: data={cfg.data.format} ({task})" + (f" at {where}" if where else ""))
    difficult = task in OBJECT_TASKS and any(c.difficult for c in counts.values())
    columns = ["split", "images", "unreadable"]
    if task in OBJECT_TASKS:
        columns += ["objects", *(["difficult"] if difficult else []), "backgrounds"]
    for column in columns:
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, c in counts.items():
        detection = []
        if task in OBJECT_TASKS:
            detection = [
                str(sum(c.objects.values())),
                *([str(c.difficult)] if difficult else []),
                str(c.backgrounds),
            ]
        table.add_row(name, str(c.images), str(len(c.unreadable)), *detection)
    if difficult:  # VOC's flag: where those objects went, as the XMLs hold more than `objects` says
        table.caption = (
            "difficult: objects the XMLs flag `difficult`, "
            + (
                "counted in objects too (data.use_difficult=true trains on them)"
                if getattr(cfg.data, "use_difficult", False)
                else "not in objects: fit leaves them out of training (data.use_difficult=true keeps them)"
            )
            + "; VOC AP ignores them"
        )
    return table


def classes_table(class_names: list[str], task: str, counts: dict[str, SplitCounts]) -> Table:
    table = Table(title="per class")
    table.add_column("class")
    for name in counts:
        table.add_column(f"{name} images" + (" (objects)" if task in OBJECT_TASKS else ""), justify="right")
    for i, class_name in enumerate(class_names):
        cells = [
            f"{c.images_with[i]} ({c.objects[i]})" if task in OBJECT_TASKS else str(c.images_with[i])
            for c in counts.values()
        ]
        table.add_row(class_name, *cells)
    return table


def problems_table(cfg: Config, rows: list[dict[str, str]]) -> Table:
    d = cfg.data
    table = Table(
        title=f"{len(rows)} problem(s)",
        caption=f"fit: data.on_bad_annotation={d.on_bad_annotation.value}, data.on_bad_image={d.on_bad_image.value}",
    )
    table.add_column("file", overflow="fold", ratio=2)
    table.add_column("where", no_wrap=True)
    table.add_column("what; fix", overflow="fold", ratio=3)
    table.add_column("fit", no_wrap=True)
    for row in rows:
        table.add_row(
            row["file"], row["where"], Text.assemble(f"{row['what']}; ", (row["fix"], "dim")), row["fit"]
        )
    return table
