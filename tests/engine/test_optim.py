import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from cvtrain.config.training import AdamWConfig, SchedConfig, SGDConfig
from cvtrain.engine.optim import build_optimizer, build_scheduler, parameter_groups, run_lr


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))


def test_no_weight_decay_on_norm_and_bias() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1, bias=False))
    decay, no_decay = parameter_groups(model, 0.01, decay_norm_and_bias=False)
    assert {p.ndim for p in decay["params"]} == {4} and len(decay["params"]) == 2
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0  # conv bias, bn weight, bn bias


def test_frozen_parameters_are_left_out() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    groups = parameter_groups(model, 0.1, decay_norm_and_bias=False)
    assert sum(len(g["params"]) for g in groups) == 2


@pytest.mark.parametrize("schema", [SGDConfig, AdamWConfig])
def test_build_optimizer(schema: type) -> None:
    cfg = OmegaConf.structured(schema)
    opt = build_optimizer(nn.Linear(3, 2), cfg, global_batch=4)
    assert opt.param_groups[0]["lr"] == cfg.lr  # no base batch: the lr as given


def test_the_lr_follows_the_global_batch_by_the_linear_rule() -> None:
    # torchvision's detection reference: 0.02 for a global batch of 16; a run of 4 images per step trains at 0.005
    cfg = OmegaConf.merge(OmegaConf.structured(SGDConfig), {"lr": 0.02, "base_batch": 16})
    assert build_optimizer(nn.Linear(3, 2), cfg, global_batch=4).param_groups[0]["lr"] == pytest.approx(0.005)
    assert run_lr(cfg, 64) == pytest.approx(0.08)
    cfg.scale_lr = False
    assert build_optimizer(nn.Linear(3, 2), cfg, global_batch=4).param_groups[0]["lr"] == 0.02


def _lrs(name: str, steps: int = 100, steps_per_epoch: int = 10, **kw: object) -> list[float]:
    cfg = OmegaConf.merge(OmegaConf.structured(SchedConfig), {"name": name, **kw})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = build_scheduler(opt, cfg, steps_per_epoch=steps_per_epoch, total_steps=steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_schedules_by_hand() -> None:
    step = _lrs("step", step_size=3, gamma=0.5)
    assert step[29] == 1.0 and step[30] == 0.5 and step[60] == 0.25
    multi = _lrs("multistep", milestones=[2, 5], gamma=0.1)
    assert multi[19] == 1.0 and multi[20] == pytest.approx(0.1) and multi[50] == pytest.approx(0.01)
    cos = _lrs("cosine", min_lr_ratio=0.1)
    assert cos[0] == 1.0 and cos[50] == pytest.approx(0.55) and cos[-1] == pytest.approx(0.1, abs=1e-3)
    poly = _lrs("poly", power=1.0)
    assert poly[50] == pytest.approx(0.5)
    assert _lrs("constant")[77] == 1.0


def test_linear_warmup_then_decay() -> None:
    lrs = _lrs("constant", warmup_epochs=1.0, warmup_factor=0.1)
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.55) and lrs[10] == 1.0
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11], strict=True))


def test_warmup_in_steps_is_capped_at_the_first_epoch_as_torchvision_does() -> None:
    # references/detection/engine.py: LinearLR from 1/1000 over min(1000, len(data_loader) - 1) iterations
    lrs = _lrs("constant", warmup_steps=1000, warmup_factor=0.001)
    assert lrs[0] == pytest.approx(0.001) and lrs[9] == 1.0 and lrs[8] < 1.0
    short = _lrs("constant", warmup_steps=4, warmup_factor=0.001)
    assert short[2] == pytest.approx(0.001 * 0.5 + 0.5) and short[4] == 1.0


def test_poly_decays_to_its_floor() -> None:
    # Ultralytics' linear schedule: lr x ((1 - progress) x (1 - lrf) + lrf), lrf 0.01
    lrs = _lrs("poly", power=1.0, min_lr_ratio=0.01)
    assert lrs[0] == 1.0 and lrs[50] == pytest.approx(0.01 + 0.99 * 0.5) and lrs[-1] == pytest.approx(0.0199)
