"""The end of a sweep (`cvtrain fit -m ...`): a table of every job, best first, and sweep_summary.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from cvtrain.contracts.monitor import monitor_mode
from cvtrain.engine.reporting import console, format_value

LAST_SWEEP: dict[str, int] = {}  # read by the CLI to exit non-zero when a job failed


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for job_dir in sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    ):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        shown = " ".join(o for o in overrides if not str(o).startswith("command="))
        results_file = job_dir / "results.json"
        results = (
            json.loads(results_file.read_text())
            if results_file.exists()
            else {"status": "failed", "error": "no results.json"}
        )
        monitor = results.get("monitor")
        rows.append(
            {
                "job": int(job_dir.name),
                "overrides": shown,
                "status": results.get("status", "failed"),
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
    if row["status"] != "ok" or math.isnan(value):
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
        status = "[green]ok[/green]" if row["status"] == "ok" else f"[red]failed[/red] {row['error']}"
        table.add_row(
            str(row["job"]),
            row["overrides"],
            status,
            row["metric"],
            format_value(row["value"]),
            format_value(row["best"]),
        )
    console.print(table)
    LAST_SWEEP["failed"] = sum(r["status"] != "ok" for r in rows)
    return rows


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            summarize(sweep_dir)
