"""The recipe a run trains with, as the one table `fit` prints first: optimizer, learning rate and its scaling to the
global batch, schedule, warm-up, augmentation, image size, epochs, EMA, and where each came from."""

from __future__ import annotations

from rich.table import Table

from cvtrain.config import Config
from cvtrain.config.provenance import DEFAULT, Provenance
from cvtrain.engine import distributed
from cvtrain.engine.optim import run_lr


def global_batch(cfg: Config) -> int:
    """Images per optimizer step over every process: batch x accumulation x world size."""
    return cfg.data.batch_size * cfg.trainer.accumulate * distributed.world_size()


def lr_text(cfg: Config) -> str:
    """The run's lr with its scaling written out: "0.005 = 0.02 × 4 / 16"."""
    o, batch = cfg.optim, global_batch(cfg)
    lr = run_lr(o, batch)
    if o.base_batch is None:
        return f"{lr:g}"
    if not o.scale_lr:
        return f"{lr:g} (for a batch of {o.base_batch}, not scaled to {batch}: optim.scale_lr=false)"
    return f"{lr:g} = {o.lr:g} × {batch} / {o.base_batch}"


def optimizer_text(cfg: Config) -> str:
    o = cfg.optim
    parts = [o.name]
    if o.name == "sgd":
        parts.append(f"momentum {o.momentum:g}" + (", nesterov" if o.nesterov else ""))
    elif o.name == "adamw":
        parts.append(f"betas {o.betas[0]:g}, {o.betas[1]:g}")
    where = "every parameter" if o.decay_norm_and_bias else "not on norm weights and biases"
    parts.append(f"weight decay {o.weight_decay:g} ({where})")
    return ", ".join(parts)


def schedule_text(cfg: Config) -> str:
    s = cfg.sched
    if s.name == "multistep":
        return f"multistep × {s.gamma:g} at epochs {', '.join(map(str, s.milestones))}"
    if s.name == "step":
        return f"step × {s.gamma:g} every {s.step_size} epochs"
    if s.name == "poly":
        floor = f", floor {s.min_lr_ratio:g} × lr" if s.min_lr_ratio else ""
        return f"poly, power {s.power:g}{floor}"
    if s.name == "cosine":
        return f"cosine to {s.min_lr_ratio:g} × lr"
    return s.name


def warmup_text(cfg: Config) -> str:
    s = cfg.sched
    if s.warmup_steps is not None:
        return f"{s.warmup_steps} steps (at most the first epoch) from {s.warmup_factor:g} × lr"
    if s.warmup_epochs:
        return f"{s.warmup_epochs:g} epochs from {s.warmup_factor:g} × lr"
    return "none"


def image_size_row(cfg: Config) -> tuple[str, tuple[str, ...]]:
    """What size the network sees, and the keys that set it: the torchvision detectors and YOLOv1 resize inside."""
    m = cfg.model
    if hasattr(m, "min_size"):
        if m.min_size is None and m.max_size is None:
            return "resized inside the model (torchvision's sizes for the backbone)", ("model.min_size",)
        return f"resized inside the model: shorter side {m.min_size}, longer at most {m.max_size}", (
            "model.min_size", "model.max_size",
        )  # fmt: skip
    if getattr(m, "arch", None) == "ssd":
        return "fixed inside the model (300, or 320 for SSDlite)", ("model.backbone",)
    if hasattr(m, "image_size"):
        return str(m.image_size), ("model.image_size",)
    return str(cfg.aug.image_size), ("aug.image_size", "data.image_size")


def recipe_rows(cfg: Config, provenance: Provenance | None) -> list[tuple[str, str, str]]:
    """(setting, value, source) for each line of the table."""
    t = cfg.trainer
    size, size_keys = image_size_row(cfg)

    def source(*keys: str) -> str:
        return provenance.source(*keys) if provenance else DEFAULT

    return [
        ("optimizer", optimizer_text(cfg), source("optim.name", "optim.momentum", "optim.weight_decay")),
        ("lr", lr_text(cfg), source("optim.lr", "optim.base_batch", "optim.scale_lr")),
        ("schedule", schedule_text(cfg), source("sched.name", "sched.milestones", "sched.power")),
        ("warm-up", warmup_text(cfg), source("sched.warmup_epochs", "sched.warmup_steps")),
        ("augmentation", cfg.aug.name, source("aug.name")),
        ("image size", size, source(*size_keys)),
        ("epochs", str(t.epochs), source("trainer.epochs")),
        ("EMA", f"decay {t.ema_decay:g}" if t.ema else "off", source("trainer.ema", "trainer.ema_decay")),
    ]


def recipe_table(cfg: Config, provenance: Provenance | None) -> Table:
    table = Table(title="recipe", show_header=True, header_style="bold")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for row in recipe_rows(cfg, provenance):
        table.add_row(*row)
    return table
