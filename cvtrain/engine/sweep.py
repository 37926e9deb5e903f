"""The end of a sweep (`cvtrain fit -m ...`): a table of every job, best first, and sweep_summary.csv; and what
lets a sweep be re-run into the same directory (jobs that already finished are reused, not retrained)."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from rich.text import Text

from cvtrain.config.compose import override_key
from cvtrain.contracts.monitor import monitor_mode
from cvtrain.engine.reporting import console, format_value, write_json

# The sweep of this process: "dir" once it starts, "failed" (jobs not ok) once it is summarised. The CLI reads it
# to exit non-zero when a job failed, and to summarise a sweep that a sweeper or launcher ended with an error.
LAST_SWEEP: dict[str, Any] = {}
DONE = ("ok", "reused")
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


class JobFailed(Exception):
    """Raised to the Optuna sweeper for a failed job (recorded in results.json): a failed trial, and the sweep
    goes on unless more than `hydra.sweeper.max_failure_rate` of a batch failed."""


class SweepInterrupted(KeyboardInterrupt):
    """A job was stopped by a signal (SIGTERM, SIGUSR1, Ctrl-C) after writing last.ckpt: the whole sweep stops,
    whatever the sweeper (Optuna would take an exception for a failed trial and go on)."""


def _read(results_file: Path) -> dict[str, Any] | None:
    try:
        results = json.loads(results_file.read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) else None


# Settings that change how a job survives faults, not what it computes: a re-run may add them and still reuse.
NOT_IN_KEY = ("trainer.resume", "trainer.checkpoint_every")


def _same(a: list[Any], b: list[Any]) -> bool:
    def key(overrides: list[Any]) -> list[str]:
        return sorted(str(o) for o in overrides if override_key(str(o)) not in NOT_IN_KEY)

    return key(a) == key(b)


def finished_results(run_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The results.json in `run_dir` of an earlier run of this job (the same overrides but `NOT_IN_KEY`, status
    ok), else None. The overrides are the ones the job wrote into results.json: Hydra rewrites .hydra/ when a job
    starts."""
    results = _read(run_dir / "results.json")
    if results is None or results.get("status") not in DONE or not isinstance(results.get("overrides"), list):
        return None
    return results if _same(results["overrides"], overrides) else None


def mark_reused(run_dir: Path, results: dict[str, Any]) -> None:
    write_json(run_dir / "results.json", {**results, "status": "ok", "reused": True})


def objective(results: dict[str, Any]) -> float | None:
    """What a job returns to the sweeper (Optuna optimises it): its monitored metric, or None when the job
    failed or the metric is not finite (Optuna then records a failed trial and the sweep goes on)."""
    value = results.get(results.get("monitor") or "")
    if results.get("status") not in DONE or not isinstance(value, float | int) or not math.isfinite(value):
        return None
    return float(value)


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder (`<sweep dir>/<job number>`, Hydra's `hydra.sweep.subdir` with every launcher;
    submitit's own `.submitit/` folder is not a job)."""
    rows = []
    for job_dir in sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    ):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = [
            str(o)
            for o in (OmegaConf.load(overrides_file) if overrides_file.exists() else [])
            if not str(o).startswith("command=")
        ]
        results = _read(job_dir / "results.json") or {"status": "failed", "error": "no results.json"}
        if isinstance(results.get("overrides"), list) and not _same(results["overrides"], overrides):
            # left by an earlier job with other overrides; this one did not finish
            results = {"status": "failed", "error": "no results.json for these overrides"}
        monitor = results.get("monitor")
        status = results.get("status", "failed")
        rows.append(
            {
                "job": int(job_dir.name),
                "overrides": " ".join(overrides),
                "status": "reused" if status == "ok" and results.get("reused") else status,
                "metric": monitor or "",
                # the direction the job itself used (results.json), so the sweep ranks as best.ckpt was picked
                "mode": results.get("monitor_mode") or (monitor_mode(monitor) if monitor else "max"),
                "value": results.get(monitor, float("nan")) if monitor else float("nan"),
                "best": results.get(f"best_{monitor}", float("nan")) if monitor else float("nan"),
                "error": results.get("error", ""),
                "dir": str(job_dir),
            }
        )
    return rows


def _drop_common_overrides(rows: list[dict[str, Any]]) -> None:
    """Show what differs between jobs: overrides every job shares are left out of the summary."""
    split = [row["overrides"].split(" ") for row in rows]
    common = set.intersection(*(set(s) for s in split)) if len(rows) > 1 else set()
    for row, parts in zip(rows, split, strict=True):
        row["overrides"] = " ".join(p for p in parts if p not in common)


def _rank_key(row: dict[str, Any]) -> tuple:
    value = row["value"] if isinstance(row["value"], float | int) else float("nan")
    if row["status"] not in DONE or math.isnan(value):
        return (1, 0.0)
    return (0, value if row["mode"] == "min" else -value)


def summarize(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = sorted(collect(sweep_dir), key=_rank_key)
    _drop_common_overrides(rows)
    with (sweep_dir / "sweep_summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(
            f,
            fieldnames=["job", "overrides", "status", "metric", "value", "best", "error", "dir"],
            extrasaction="ignore",
        )
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title=f"sweep summary ({sweep_dir})", header_style="bold")
    for column in ("job", "overrides", "status", "metric", "final", "best"):
        table.add_column(column)
    for row in rows:
        status = (
            Text(row["status"], style="green")
            if row["status"] in DONE
            else Text.assemble(("failed", "red"), f" {row['error']}")
        )
        table.add_row(
            str(row["job"]),
            row["overrides"],
            status,
            row["metric"],
            format_value(row["value"]),
            format_value(row["best"]),
        )
    console.print(table)
    LAST_SWEEP["failed"] = sum(r["status"] not in DONE for r in rows)
    return rows


def close_sweep() -> None:
    """Summarise the sweep this process started if its end was not reached (a sweeper or launcher raised:
    Optuna when every trial failed, submitit when a job was killed)."""
    sweep_dir = LAST_SWEEP.get("dir")
    if sweep_dir and "failed" not in LAST_SWEEP and Path(sweep_dir).is_dir():
        summarize(Path(sweep_dir))


def why_stopped(e: BaseException) -> str | None:
    """A readable reason for an exception that a sweeper or launcher ended the sweep with, or None when it is not
    one of theirs (then it is a bug and keeps its traceback)."""
    from hydra.errors import HydraException

    lines = [line for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    if isinstance(e, JobFailed):
        return f"more than hydra.sweeper.max_failure_rate of a batch of trials failed (the last: {e})"
    if isinstance(e, ValueError) and "No trials are completed yet" in str(e):
        return "every trial failed, so Optuna has no best value (errors in each job's results.json and log)"
    if isinstance(e, RuntimeError) and "Study.stop" in str(e):  # the Optuna sweeper's, on a grid's last trial
        return "the last trial of Optuna's grid failed, so the sweeper wrote no optimization_results.yaml"
    if type(e).__module__.startswith("submitit"):  # a job killed (time limit, memory) or never started
        return " ".join(dict.fromkeys([lines[0], *lines[-2:]]))
    if isinstance(e, HydraException):
        return lines[0]
    return None


def _quiet_optuna() -> None:
    """Optuna's records through cvtrain's log handlers (not its own coloured one); alembic's import chatter off."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        LAST_SWEEP.clear()
        LAST_SWEEP["dir"] = str(config.hydra.sweep.dir)
        if config.hydra.sweeper.get("_target_") == OPTUNA_SWEEPER:
            _quiet_optuna()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            summarize(sweep_dir)
