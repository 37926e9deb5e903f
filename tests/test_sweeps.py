"""Sweeps with Hydra's own plugins (submitit launcher, Optuna sweeper), the override pre-check on their search
spaces, and re-running a sweep into the same directory."""

from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cvtrain.errors import ConfigError
from cvtrain.overrides import check_overrides, sweeper_overrides
from tests.conftest import FAST, read_results, run_cli, run_until

# One epoch of two steps on 16 random 16-pixel images: a job takes about a second after start-up.
TINY = (
    *FAST,
    "data=synthetic",
    "data.length=16",
    "data.image_size=16",
    "data.batch_size=8",
    "trainer.epochs=1",
)  # the default model, small_cnn


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((sweep_dir / "sweep_summary.csv").open()))


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


# --- the pre-check ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["hydra/sweeper=optuna", "optim.lr=interval(0.001,0.1)", "model=choice(resnet18,resnet50)"],
        ["hydra/sweeper=optuna", "optim.lr=tag(log, interval(0.001,0.1))", "trainer.epochs=range(1,4)"],
        [
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=20",
            "hydra/sweeper/sampler=grid",
            "model=glob(resnet*)",
        ],
        ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=600"],
        ["hydra/launcher=submitit_local", "optim.lr=0.1,0.01"],
    ],
)
def test_precheck_accepts_plugins_and_search_spaces(overrides: list[str]) -> None:
    assert check_overrides(["-m", *overrides], "fit") is None


def test_precheck_still_names_a_misspelled_key_inside_a_search_space() -> None:
    problem = check_overrides(["-m", "hydra/sweeper=optuna", "optim.lrr=interval(0.1,1)"], "fit")
    assert problem is not None and "optim.lrr" in problem and "valid keys of optim" in problem


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=choice(resnet18,resnet5)"], ["model/resnet5", "resnet50"]),  # every option is composed
        (["hydra/launcher=submitit_slurmm"], ["submitit_slurmm", "submitit_local"]),
        (["hydra/sweeper=optuna", "hydra.sweeper.n_trails=3"], ["hydra.sweeper.n_trails"]),
        (
            ["trainer.epochs=interval(1,3)"],
            ["trainer.epochs", "range(LOW,HIGH)"],
        ),  # Hydra's intervals are floats
    ],
)
def test_precheck_rejects_typos_in_sweeps(overrides: list[str], expected: list[str]) -> None:
    problem = check_overrides(["-m", *overrides], "fit")
    assert problem is not None
    for text in expected:
        assert text in problem


@pytest.mark.parametrize(
    ("overrides", "added"),
    [
        (["model=choice(small_cnn,resnet18)"], "hydra.sweeper.direction=minimize"),  # top1_err
        (["model=choice(unet,fcn)"], "hydra.sweeper.direction=maximize"),  # miou
        (["model=faster_rcnn"], "hydra.sweeper.direction=maximize"),  # map
        (["model=unet", "trainer.monitor=loss"], "hydra.sweeper.direction=minimize"),
        (["model=unet", "hydra.sweeper.direction=minimize"], None),  # the user's choice stands
    ],
)
def test_optuna_direction_follows_the_monitored_metric(overrides: list[str], added: str | None) -> None:
    extra = sweeper_overrides(["-m", "hydra/sweeper=optuna", *overrides], "fit")
    assert "hydra.sweeper.max_failure_rate=1.0" in extra  # a failed trial does not stop the sweep
    assert [e for e in extra if "direction" in e] == ([added] if added else [])


def test_optuna_direction_is_refused_when_the_jobs_disagree() -> None:
    with pytest.raises(ConfigError, match="opposite directions"):
        sweeper_overrides(["-m", "hydra/sweeper=optuna", "model=choice(small_cnn,unet)"], "fit")
    assert sweeper_overrides(["-m", "model=small_cnn,unet"], "fit") == []  # Hydra's basic sweeper: nothing


# --- sweeps as a user runs them -----------------------------------------------------------------------------


def test_submitit_local_sweep_runs_every_job_and_summarises(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "fit",
        "-m",
        *TINY,
        "hydra/launcher=submitit_local",
        "optim.lr=0.1,0.01",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert (sweep_dir / ".submitit").is_dir()  # submitit's own logs sit beside the job folders
    rows = summary_rows(sweep_dir)
    assert sorted(r["overrides"] for r in rows) == ["optim.lr=0.01", "optim.lr=0.1"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for job in job_dirs(sweep_dir):
        assert read_results(job)["status"] == "ok"
    assert "sweep summary" in proc.stdout


def test_optuna_sweep_optimises_the_monitored_metric(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "fit",
        "-m",
        *TINY,
        "trainer.monitor=loss",  # varies from job to job even on random data
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.seed=0",
        "model=choice(small_cnn,resnet18)",
        "optim.lr=interval(0.01,0.1)",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert "Directions: ['minimize']" in proc.stdout + proc.stderr  # loss: lower is better
    jobs = [read_results(d) for d in job_dirs(sweep_dir)]
    assert len(jobs) == 3 and all(j["status"] == "ok" for j in jobs)
    best = min(jobs, key=lambda j: j["loss"])
    optuna = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert optuna.best_value == pytest.approx(best["loss"])
    assert f"model={optuna.best_params.model}" in best["overrides"]
    rows = summary_rows(sweep_dir)
    assert len(rows) == 3 and float(rows[0]["value"]) == pytest.approx(best["loss"])  # best first


def test_optuna_records_a_failed_job_as_a_failed_trial_and_goes_on(tmp_path: Path) -> None:
    # alexnet cannot run on 16-pixel images; with this seed the random sampler tries both models.
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "fit",
        "-m",
        *TINY,
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=2",
        "model=choice(alexnet,small_cnn)",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1  # a job failed, as with Hydra's basic sweeper
    assert sorted(r["status"] for r in summary_rows(sweep_dir)) == ["failed", "ok"]
    optuna = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert optuna.best_params.model == "small_cnn"


def test_optuna_sweep_where_every_trial_fails_still_closes_with_the_summary(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "fit",
        "-m",
        *TINY,
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=1",
        "model=choice(alexnet)",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1
    assert [r["status"] for r in summary_rows(sweep_dir)] == ["failed"]
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "every trial failed" in out and "No trials are completed yet" not in out


def test_rerunning_a_sweep_reuses_finished_jobs_and_runs_the_rest(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ("fit", "-m", *TINY, "optim.lr=0.1,0.05,0.02", f"hydra.sweep.dir={sweep_dir}")
    run_cli(*args, cwd=tmp_path)
    first, second, third = job_dirs(sweep_dir)
    kept = {d: (d / "checkpoints" / "last.ckpt").stat().st_mtime_ns for d in (first, second)}
    (third / "results.json").unlink()  # as if the sweep was killed while job 2 ran
    # job 1 holds the results of other overrides (a different sweep used this directory before)
    stale = read_results(second)
    (second / "results.json").write_text(json.dumps({**stale, "overrides": ["optim.lr=0.5"]}))

    proc = run_cli(*args, cwd=tmp_path)
    assert "reused" in proc.stdout
    assert (first / "checkpoints" / "last.ckpt").stat().st_mtime_ns == kept[first]  # not retrained
    assert (second / "checkpoints" / "last.ckpt").stat().st_mtime_ns != kept[second]  # retrained
    assert read_results(third)["status"] == "ok"
    statuses = {int(r["job"]): r["status"] for r in summary_rows(sweep_dir)}
    assert statuses == {0: "reused", 1: "ok", 2: "ok"}
    assert math.isfinite(float(next(r for r in summary_rows(sweep_dir) if r["job"] == "0")["value"]))


def test_a_sweep_stopped_by_a_signal_closes_with_its_summary_and_a_rerun_continues_it(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    args = (
        "fit",
        "-m",
        *TINY,
        "data.length=512",
        "optim.lr=0.1,0.05",
        f"hydra.sweep.dir={sweep_dir}",
    )  # 64 steps
    stopped = run_until([*args], tmp_path, lambda line: "step 3 " in line, signal.SIGTERM)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stdout
    out = " ".join(stopped.stdout.split())
    assert "the sweep stopped: stopped by SIGTERM" in out and "trainer.resume=auto" in out
    assert [r["status"] for r in summary_rows(sweep_dir)] == ["failed"]  # job 1 never started

    rerun = run_cli(*args, "trainer.resume=auto", cwd=tmp_path)
    assert "resumed from" in rerun.stdout  # job 0 continues from its last.ckpt
    jobs = [read_results(d) for d in job_dirs(sweep_dir)]
    assert [j["status"] for j in jobs] == ["ok", "ok"] and jobs[0]["steps"] == jobs[1]["steps"] == 64
    again = run_cli(*args, cwd=tmp_path)  # without trainer.resume: still the same jobs
    assert [r["status"] for r in summary_rows(sweep_dir)] == ["reused", "reused"]
    assert "reused" in again.stdout
