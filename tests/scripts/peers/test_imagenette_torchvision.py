"""The torchvision peer's defaults are `+experiment=imagenette`'s settings, value by value: the side-by-side
comparison in docs/benchmarks.md stays a comparison of the same run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import compose_raw

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "peers" / "imagenette_torchvision.py"


def peer_defaults(monkeypatch: pytest.MonkeyPatch) -> dict:
    spec = importlib.util.spec_from_file_location("imagenette_torchvision", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["imagenette_torchvision.py", "data/imagenette"])
    return vars(module.parse_args())


def test_the_peer_trains_what_the_imagenette_recipe_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    peer, cfg = peer_defaults(monkeypatch), compose_raw("+experiment=imagenette")
    assert (cfg.optim.name, cfg.sched.name, cfg.aug.name) == ("sgd", "cosine", "imagenet")
    assert (cfg.trainer.precision, cfg.trainer.channels_last, cfg.aug.mixup, cfg.aug.cutmix) == (
        "auto",
        False,
        0,
        0,
    )
    assert (
        list(cfg.aug.crop_scale) == [0.08, 1.0] and cfg.aug.hflip == 0.5
    )  # RandomResizedCrop's, flip's defaults
    ours = {
        "arch": cfg.model.arch,
        "image_size": cfg.aug.image_size,
        "epochs": cfg.trainer.epochs,
        "batch_size": cfg.data.batch_size,
        "workers": cfg.data.num_workers,
        "lr": cfg.optim.lr,
        "momentum": cfg.optim.momentum,
        "weight_decay": cfg.optim.weight_decay,
        "warmup_epochs": cfg.sched.warmup_epochs,
        "warmup_factor": cfg.sched.warmup_factor,
        "label_smoothing": cfg.model.label_smoothing,
        "seed": cfg.trainer.seed,
    }
    assert {k: peer[k] for k in ours} == ours
