"""The CLI as a user runs it: fit -> eval round trip, resume, predict, bad input, sweeps."""

import csv
import json
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import (
    FAST,
    make_imagefolder,
    read_results,
    run_cli,
    run_main_reporting_imports,
    write_image,
)

TINY = (*FAST, "model=resnet18", "data.batch_size=4", "data.image_size=32", "aug.resize_size=32")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("imgs"))


@pytest.fixture(scope="module")
def trained(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("fit")
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={folder}",
        *TINY,
        "trainer.epochs=2",
        f"hydra.run.dir={run_dir}",
        cwd=run_dir,
    )
    return run_dir


def test_fit_writes_the_run_directory(trained: Path) -> None:
    for name in (
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "metrics.csv",
        "results.json",
        ".hydra/config.yaml",
        "cvtrain.log",
        "train_log.csv",
        "plots/curves.png",
        "plots/confusion_matrix.png",
        "plots/predictions.png",
    ):
        assert (trained / name).is_file(), name
    assert not (trained / "plots" / "pr_curve.png").exists()  # detection only
    assert list((trained / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    results = read_results(trained)
    assert results["status"] == "ok" and results["epochs"] == 2 and results["steps"] == 6
    assert results["monitor"] == "top1_err" and "best_top1_err" in results
    assert {"top1_acc", "top5_acc", "top1_err", "top5_err", "loss", "wall_time_s"} <= results.keys()
    assert float(rows[-1]["top1_err"]) == results["top1_err"]  # results.json = the final evaluation


def test_eval_of_the_checkpoint_reproduces_the_final_metrics(trained: Path, tmp_path: Path) -> None:
    run_cli(
        "eval",
        f"ckpt={trained}/checkpoints/last.ckpt",
        "eval.save_predictions=true",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    fit, again = read_results(trained), read_results(tmp_path)
    for key in ("top1_acc", "top5_acc", "top1_err", "top5_err", "loss"):
        assert again[key] == fit[key], key
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions) == 12
    first = predictions[0]
    assert set(first) == {"path", "label", "label_name", "top5", "top5_names", "scores"}
    assert len(first["top5"]) == 3  # 3 classes < 5
    assert first["scores"] == sorted(first["scores"], reverse=True)


def test_eval_overrides_apply_on_top_of_the_checkpoint(trained: Path, folder: Path, tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    for cls in ("n01", "n02", "n03"):
        (tmp_path / "val" / cls).symlink_to(folder / "val" / cls)
    run_cli(
        "eval",
        f"ckpt={trained}/checkpoints/last.ckpt",
        f"data.root={tmp_path}",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert read_results(tmp_path / "run")["val_images"] == 12


def test_resume_continues_exactly_where_it_stopped(folder: Path, trained: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"  # the same 2-epoch run, stopped after its first epoch (3 steps)
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={folder}",
        *TINY,
        "trainer.epochs=2",
        "trainer.max_steps=3",
        f"hydra.run.dir={first}",
        cwd=tmp_path,
    )
    assert read_results(first)["steps"] == 3
    resumed = tmp_path / "resumed"
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={folder}",
        *TINY,
        "trainer.epochs=2",
        f"trainer.resume={first}/checkpoints/last.ckpt",
        f"hydra.run.dir={resumed}",
        cwd=tmp_path,
    )
    a, b = read_results(resumed), read_results(trained)  # `trained` ran the same 2 epochs without a stop
    assert a["steps"] == b["steps"] == 6
    for key in ("top1_err", "loss"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_predict_prints_and_writes_top_classes(trained: Path, folder: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "predict",
        f"ckpt={trained}/checkpoints/last.ckpt",
        f"inputs={folder}/val/n02",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == 4 and all(r["label"] == -1 and r["label_name"] is None for r in records)
    names = ["n01", "n02", "n03"]
    assert all(r["top5_names"] == [names[c] for c in r["top5"]] for r in records)
    assert (
        "0.JPEG" in proc.stdout and "n0" in proc.stdout and "4 image(s); predicted first: n0" in proc.stdout
    )
    assert all(Path(r["drawn"]).parent == tmp_path / "predictions" for r in records)


def test_bad_key_fails_fast_without_a_traceback(tmp_path: Path) -> None:
    proc = run_cli("fit", "optim.lrr=0.1", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "lrr" in out and "momentum" in out and "Traceback" not in out
    proc = run_cli("fit", "model=resnet5", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "resnet50" in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing ran


def test_help_lists_commands_groups_and_options(tmp_path: Path) -> None:
    out = run_cli("--help", cwd=tmp_path).stdout
    for word in ("fit", "eval", "predict", "optim", "adamw", "resnet50", "imagenet", "cosine"):
        assert word in out


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["--help"],
            0,
            ["usage: cvtrain {fit,eval,predict,data check,export,bench}", "config groups", "adamw"],
        ),
        (["--version"], 0, [f"cvtrain {version('cvtrain')}\n"]),
        (
            ["fit", "optim.lrr=0.1"],
            2,
            [
                "cvtrain fit: optim.lrr is not a key of the config.\n  did you mean optim.lr?\n"
                "  valid keys of optim: name, lr, weight_decay, decay_norm_and_bias, base_batch, scale_lr, momentum, nesterov\n"
            ],
        ),
        # what the user typed prints as typed: square brackets are not rich markup
        (["fit", "optim.lr='x[red]y'"], 2, ["cvtrain fit: optim.lr=x[red]y is not a number"]),
        # a misspelled key gets the key it resembles, not Hydra's advice to add the misspelling (+trainer.epoch=3)
        (
            ["fit", "trainer.epoch=3"],
            2,
            ["cvtrain fit: trainer.epoch is not a key of the config.\n  did you mean trainer.epochs?\n"],
        ),
        (["fit[red]"], 2, ["cvtrain: unknown command 'fit[red]'; choose one of: fit, eval"]),
        (["fit", "--help"], 0, ["cvtrain is powered by Hydra.", "== Configuration groups =="]),
        (["fit", "model=resnet50", "--cfg", "job"], 0, ["arch: resnet50"]),
        # a command missing what it runs on says so before loading anything
        (["eval"], 2, ["cvtrain eval: give ckpt=PATH (a checkpoint), or predictions=FILE to score saved"]),
        (["predict", "ckpt=last.ckpt"], 2, ["cvtrain predict: give ckpt=PATH (a checkpoint) and inputs="]),
        (["export"], 2, ["cvtrain export: give ckpt=PATH (a checkpoint), and format=onnx|torchscript"]),
    ],
)
def test_help_version_and_a_bad_key_answer_without_importing_torch(
    args: list[str], code: int, expected: list[str], tmp_path: Path
) -> None:
    proc = run_main_reporting_imports(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "imported: []" in proc.stderr, proc.stderr
    for text in expected:
        assert text in proc.stdout
    if args == ["--version"]:
        assert proc.stdout == expected[0]


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    out = run_cli("fit", "model=resnet50", "optim=adamw", "--cfg", "job", cwd=tmp_path).stdout
    assert "arch: resnet50" in out and "name: adamw" in out


def test_unreadable_image_stops_the_run_naming_it_or_is_skipped_and_counted(
    folder: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    make_imagefolder(root)
    (root / "train" / "n02" / "broken.JPEG").write_bytes(b"\xff\xd8\xff truncated")
    proc = run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={root}",
        *TINY,
        "trainer.max_steps=3",
        f"hydra.run.dir={tmp_path}/stop",
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert (
        proc.returncode != 0
        and "broken.JPEG" in out
        and "on_bad_image=skip" in out
        and "Traceback" not in out
    )
    run_cli(
        "fit",
        "data=imagefolder",
        f"data.root={root}",
        *TINY,
        "trainer.epochs=1",
        "data.on_bad_image=skip",
        f"hydra.run.dir={tmp_path}/skip",
        cwd=tmp_path,
    )
    assert read_results(tmp_path / "skip")["bad_images_skipped"] == 1
    assert "broken.JPEG" in (tmp_path / "skip" / "bad_images.txt").read_text()


def test_sweep_runs_every_job_and_summarises_best_first(folder: Path, tmp_path: Path) -> None:
    # alexnet cannot run on 32-pixel images: that job fails, the others still run and are ranked.
    proc = run_cli(
        "fit",
        "-m",
        "data=imagefolder",
        f"data.root={folder}",
        *TINY,
        "trainer.max_steps=2",
        "model=resnet18,alexnet",
        "optim.lr=0.05,0.01",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep_summary.csv").open()))
    assert len(rows) == 4
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "failed"]
    assert all("alexnet" in r["overrides"] for r in rows[2:])
    values = [float(r["value"]) for r in rows[:2]]
    assert values == sorted(values)  # top1_err: lower is better, best first
    assert "sweep summary" in proc.stdout


def test_imagenet_layout_with_synset_names(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "imagenet", classes=("n01440764", "n02102040"), per_class=2)
    write_image(root / "train" / "n01440764" / "extra.jpeg", fmt="JPEG")
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn02102040 English springer\n")
    run_cli(
        "fit",
        "data=imagenet",
        f"data.root={root}",
        *TINY,
        "trainer.max_steps=1",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    proc = run_cli(
        "predict",
        f"ckpt={tmp_path}/run/checkpoints/last.ckpt",
        f"inputs={root}/val/n01440764/0.JPEG",
        f"hydra.run.dir={tmp_path}/pred",
        cwd=tmp_path,
    )
    assert "tench" in proc.stdout or "English springer" in proc.stdout


REGULARISED = ("model.stochastic_depth=0.3", "model.label_smoothing=0.1", "aug.mixup=0.2", "aug.cutmix=1.0")


def fit_regularised(folder: Path, run_dir: Path, *extra: str) -> None:
    """Stochastic depth + label smoothing + MixUp/CutMix (one of the two per batch), 2 epochs of 3 steps."""
    common = ("fit", "data=imagefolder", f"data.root={folder}", *TINY, *REGULARISED, "trainer.epochs=2")
    run_cli(*common, *extra, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)


@pytest.fixture(scope="module")
def regularised(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("regularised") / "full"
    fit_regularised(folder, run_dir)
    return run_dir


def test_regularised_fit_is_evaluated_on_the_whole_network(regularised: Path, tmp_path: Path) -> None:
    # eval of the checkpoint equals the fit's final evaluation: no branch is dropped, no batch mixed in evaluation
    run_cli("eval", f"ckpt={regularised}/checkpoints/last.ckpt", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    fit, again = read_results(regularised), read_results(tmp_path)
    assert fit["status"] == "ok" and fit["steps"] == 6
    for key in ("top1_acc", "top1_err", "loss"):
        assert again[key] == fit[key], key


@pytest.mark.slow
def test_regularised_fit_resumes_exactly(regularised: Path, folder: Path, tmp_path: Path) -> None:
    # The mixing and dropping draws come from torch's generator, which the checkpoint keeps.
    fit_regularised(folder, tmp_path / "first", "trainer.max_steps=3")
    fit_regularised(folder, tmp_path / "resumed", f"trainer.resume={tmp_path}/first/checkpoints/last.ckpt")
    full, resumed = read_results(regularised), read_results(tmp_path / "resumed")
    assert resumed["steps"] == 6
    for key in ("top1_err", "loss"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-6), key


def test_every_subcommand_names_a_function_taking_config_run_dir_and_overrides() -> None:
    import inspect

    from hydra.utils import get_method

    from cvtrain.cli import SUBCOMMANDS

    for name, subcommand in SUBCOMMANDS.items():
        params = list(inspect.signature(get_method(subcommand.run)).parameters)
        assert params[:3] == ["raw_cfg", "run_dir", "overrides"], name
