"""Typed schemas for every config group (one module per family), stored in Hydra's ConfigStore, and the one
conversion of a composed config to those types (`to_typed`), done once at the command line.

    from cvtrain.config import Config, to_typed
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from cvtrain.config import data, logger, model, training  # noqa: F401  (their @schema classes register on import)
from cvtrain.config.data import available_cpus, shapes_image_size
from cvtrain.config.ranges import bounded, check_ranges
from cvtrain.config.registry import SCHEMAS
from cvtrain.config.training import TrainerConfig
from cvtrain.errors import ConfigError

# The config groups a user picks options of (`data=voc`, `logger=[tensorboard,csv]`).
GROUPS = ("data", "model", "optim", "sched", "aug", "trainer", "logger")
# Those a checkpoint stores, so that `eval` recomposes them: what the model was trained with. The recorders are how
# one run reports, so each command takes its own.
CHECKPOINT_GROUPS = ("data", "model", "optim", "sched", "aug", "trainer")


class COCOBackend(StrEnum):
    faster = "faster"  # faster-coco-eval's C++ COCOeval: pycocotools' numbers (see cvtrain/metrics/coco.py), ~9x faster
    pycocotools = "pycocotools"  # the reference implementation


@dataclass
class EvalConfig:
    save_predictions: bool = False
    coco_backend: COCOBackend = COCOBackend.faster  # COCO AP of every evaluation (fit, eval, predictions=)


@dataclass
class PredictConfig:
    topk: int = bounded(5, ge=1)
    score_threshold: float = bounded(0.5, ge=0, le=1)
    batch_size: int = bounded(8, ge=1)


@dataclass
class ExportConfig:
    opset: int | None = bounded(None, ge=7)  # ONNX opset; None: the exporter's default
    # parity check: |exported - PyTorch| <= atol + rtol * |PyTorch| for every output element
    rtol: float = bounded(1e-4, ge=0)
    atol: float = bounded(1e-4, ge=0)
    # images the parity check runs (validation images, else inputs=, else random)
    samples: int = bounded(4, ge=1)


@dataclass
class BenchConfig:
    # batches timed in each measurement (the input pipeline, then the training step)
    steps: int = bounded(50, ge=1)
    # batches run before each timing: workers start (keep it above data.num_workers: their first batches come
    # together), cuDNN and torch.compile tune
    warmup: int = bounded(10, ge=0)


@dataclass
class Config:
    command: str = "fit"  # set by the CLI: fit | eval | predict | data_check | export | bench
    ckpt: str | None = None  # eval / predict / export: the checkpoint to load
    inputs: str | None = None  # predict: an image file or a folder of images (export: parity-check images)
    format: str = "onnx"  # export: onnx | torchscript
    predictions: str | None = None  # eval: score a saved predictions file instead of running a model
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    data: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    sched: Any = MISSING
    aug: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    # the chosen recorders by name (`logger.tensorboard`, ...), each typed by its schema in cvtrain/config/logger.py
    logger: dict[str, Any] = field(default_factory=dict)


def register_schemas() -> None:
    OmegaConf.register_new_resolver("cvtrain.shapes_image_size", shapes_image_size, replace=True)
    OmegaConf.register_new_resolver("cvtrain.cpus", available_cpus, replace=True)
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, name, node in SCHEMAS:
        store.store(group=f"schema/{group}", name=name, node=node)


def to_typed(cfg: DictConfig) -> Config:
    """The composed config as the schema's dataclasses (enums as enums, interpolations resolved). A required
    value left unset (`???`) or outside its declared range is a `ConfigError` naming the key."""
    check_ranges(cfg)
    try:
        typed = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as e:
        raise ConfigError(
            f"{e.full_key} is required here: give {e.full_key}=... on the command line "
            "(`cvtrain fit --cfg job` prints every key)."
        ) from None
    for group in GROUPS:
        _reject_added_keys(getattr(typed, group), group)
    for name, recorder in typed.logger.items():  # type: ignore[attr-defined]
        _reject_added_keys(recorder, f"logger.{name}")
    return typed  # type: ignore[return-value]


def _reject_added_keys(node: Any, where: str) -> None:
    """`+data.key=...` adds a key the schema lacks; OmegaConf keeps it as a plain attribute that nothing reads."""
    if not dataclasses.is_dataclass(node):
        return
    names = [f.name for f in dataclasses.fields(node)]
    added = sorted(set(vars(node)) - set(names))
    if added:
        raise ConfigError(
            f"{where}.{added[0]} is not an option of {where}; its options are {', '.join(names)}"
        )


def to_plain(obj: Any) -> Any:
    """A typed config (or part of it) as plain dicts, lists and strings: what checkpoints and JSON files hold."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, DictConfig):
        return OmegaConf.to_container(obj, resolve=True, enum_to_str=True)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
