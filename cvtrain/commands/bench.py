"""`cvtrain bench`: where a training step's time goes, for any `data=` / `aug=` / `model=`.

Two measurements on the objects `fit` trains with (`build_run`): the input pipeline alone (read, decode, augment,
collate in `data.num_workers` workers, then to the device) and the full training step (`loop.train_step`: the same
batches, forward, loss, backward, optimizer step), with the share of that step spent waiting for the next batch.
Figures are per process; `bench.json` in the run directory holds them and what was run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.table import Table

from cvtrain.commands.fit import build_run
from cvtrain.composition import build_setup, group_choices
from cvtrain.config import to_typed
from cvtrain.contracts.batch import Batch
from cvtrain.engine import distributed
from cvtrain.engine.loop import start_epoch, to_device, train_step
from cvtrain.engine.meters import DataWait
from cvtrain.engine.reporting import log, show, write_json
from cvtrain.engine.state import FitProgress, FitSetup


def run_bench(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = to_typed(raw_cfg)
    steps, warmup = cfg.bench.steps, cfg.bench.warmup  # their ranges are checked by to_typed
    cfg.logger = {}  # bench.json is what a bench writes
    setup = build_setup(cfg, need_train=True)
    run = build_run(cfg, setup, run_dir)
    run.model.train()
    batches = _batches(run)
    data_s, data_images = _time_data(run, batches, warmup, steps)
    step_s, step_images, waited = _time_steps(run, batches, warmup, steps)
    d = cfg.data
    results = {
        "status": "ok",
        "monitor": "step_images_per_s",  # what a sweep of benches ranks by (`cvtrain bench -m ...`)
        "monitor_mode": "max",
        "model": cfg.model.name,
        "data": d.format,
        "choices": group_choices(),
        "batch_size": d.batch_size,
        "num_workers": d.num_workers,
        "device": str(setup.device),
        "autocast": str(setup.amp_dtype) if setup.amp_dtype else None,
        # what else changes the figures, so that two benches can be told apart from their bench.json alone
        "options": {
            "image_size": cfg.aug.image_size,
            "precision": cfg.trainer.precision,
            "channels_last": cfg.trainer.channels_last,
            "compile": cfg.trainer.compile,
            "decode": str(getattr(d, "decode", "workers")),
        },
        "processes": distributed.world_size(),
        "steps": steps,
        "warmup": warmup,
        "data_images_per_s": data_images / data_s,
        "step_images_per_s": step_images / step_s,
        "compute_images_per_s": step_images / max(step_s - waited, 1e-9),
        "data_wait_share": waited / step_s,
        "data_s": data_s,
        "data_images": data_images,
        "step_s": step_s,
        "step_images": step_images,
    }
    write_json(run_dir / "bench.json", results)
    show(_table(results))
    log.info("%s; bench.json in %s", _verdict(results), run_dir)
    return results


def _batches(run: FitSetup) -> Iterator[Batch]:
    """The training batches as fit's loop takes them, epoch after epoch (a bench may outlast an epoch)."""
    for epoch in itertools.count():
        start_epoch(run, epoch)
        for batch in run.train_loader:
            run.bad_samples.check(batch.bad)
            if len(batch):
                yield batch


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timing holds it (the CPU runs synchronously)."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def _time_data(run: FitSetup, batches: Iterator[Batch], warmup: int, steps: int) -> tuple[float, int]:
    """Seconds and images for `steps` batches loaded, augmented, collated and moved to the device."""
    for batch in itertools.islice(batches, warmup):
        to_device(run, batch)
    _sync(run.device)
    start, images = time.perf_counter(), 0
    for batch in itertools.islice(batches, steps):
        images += len(to_device(run, batch))
    _sync(run.device)
    return time.perf_counter() - start, images


def _time_steps(run: FitSetup, batches: Iterator[Batch], warmup: int, steps: int) -> tuple[float, int, float]:
    """Seconds, images and seconds waited for data over `steps` training steps, as `fit` takes them (an optimizer
    step every `trainer.accumulate` batches)."""
    progress = FitProgress()
    for n, batch in enumerate(itertools.islice(batches, warmup), start=1):
        train_step(run, progress, batch, step_now=n % run.accumulate == 0)
    _sync(run.device)
    waits, images = DataWait(itertools.islice(batches, steps)), 0
    for n, batch in enumerate(waits, start=1):
        train_step(run, progress, batch, step_now=n % run.accumulate == 0)
        images += len(batch)
    _sync(run.device)
    return waits.elapsed(), images, waits.waited


def _table(r: dict[str, Any]) -> Table:
    workers = f"{r['num_workers']} worker{'s' if r['num_workers'] != 1 else ''}"
    table = Table(
        title=f"bench: {r['model']} on {r['data']}, batch {r['batch_size']}, {workers}, {r['device']}",
        header_style="bold",
    )
    table.add_column("what is timed")
    table.add_column("images/s", justify="right")
    table.add_column("ms/batch", justify="right")
    rows = (
        (f"input pipeline: read, augment, collate, to {r['device']}", r["data_images_per_s"]),
        ("training step: next batch, forward, loss, backward, optimizer", r["step_images_per_s"]),
        ("training step without its wait for data", r["compute_images_per_s"]),
    )
    for what, rate in rows:
        table.add_row(what, f"{rate:.1f}", f"{1000 * r['batch_size'] / rate:.1f}")
    table.add_row(
        "share of the training step spent waiting for data", f"{100 * r['data_wait_share']:.0f}%", ""
    )
    return table


def _verdict(r: dict[str, Any]) -> str:
    """Which of the two limits the training step: the pipeline, or the model's own step."""
    if r["num_workers"] == 0:
        return (
            f"data.num_workers=0: batches load in the training process, in series with the step "
            f"({100 * r['data_wait_share']:.0f}% of it); data workers would load them alongside"
        )
    if r["data_images_per_s"] < r["compute_images_per_s"]:
        return (
            f"input-bound: the pipeline delivers {r['data_images_per_s']:.0f} img/s, the step alone could train "
            f"{r['compute_images_per_s']:.0f}: raise data.num_workers (now {r['num_workers']}) or lighten aug="
        )
    return (
        f"compute-bound: the pipeline delivers {r['data_images_per_s']:.0f} img/s, more than the "
        f"{r['compute_images_per_s']:.0f} the step trains"
    )
