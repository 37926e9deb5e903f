"""`cvtrain predict ckpt=PATH inputs=FILE_OR_DIR`: run a checkpoint on images and write what it sees.

No dataset is needed: the inputs go through the task's evaluation transform and the engine's evaluation loop,
with the task's `predict_writer` as the only sink (and no evaluator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cvtrain.commands.setup import (
    amp_dtype_for,
    checkpoint_config,
    checkpoint_mean_image,
    seed_everything,
    task_of,
)
from cvtrain.config import to_plain, to_typed
from cvtrain.data.inputs import InputImages
from cvtrain.data.transforms import eval_transform
from cvtrain.engine import distributed, loaders
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoint import load_checkpoint
from cvtrain.engine.host_memory import keep_freed_memory
from cvtrain.engine.loop import evaluate
from cvtrain.engine.recorders.console import progress_bar
from cvtrain.engine.reporting import log, show
from cvtrain.engine.signals import EvaluationStopped, Stopped, StopRequest
from cvtrain.engine.state import evaluated_weights, load_weights
from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model


def run_predict(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> list[dict[str, Any]]:
    if raw_cfg.ckpt is None or raw_cfg.inputs is None:
        raise ConfigError("cvtrain predict needs ckpt=PATH and inputs=IMAGE_OR_FOLDER.")
    state = load_checkpoint(raw_cfg.ckpt)
    cfg = to_typed(checkpoint_config(raw_cfg, overrides, state))
    class_names = list(state["class_names"])
    seed_everything(cfg.trainer.seed, deterministic=False)
    device = distributed.setup(cfg.trainer.device)
    keep_freed_memory(device)
    task = task_of(cfg, class_names, checkpoint_mean_image(cfg, state))
    model = build_model(cfg.model, num_classes=len(class_names)).to(device)
    load_weights(
        model, evaluated_weights(state), path=cfg.ckpt, state=state, model_config=to_plain(cfg.model)
    )
    images = InputImages(cfg.inputs, transform=eval_transform(cfg.model.task, cfg.aug))
    loader = loaders.eval_loader(
        images,
        collate=task.collate,
        batch_size=cfg.predict.batch_size,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        device=device,
    )
    writer = task.predict_writer(run_dir)
    progress = progress_bar(cfg.logger)
    try:
        with StopRequest() as stop:
            log.info("predict %s on %d image(s), device %s", cfg.ckpt, len(images), device)
            evaluate(
                model=model,
                loader=loader,
                task=task,
                evaluator=None,
                device=device,
                amp_dtype=amp_dtype_for(cfg.trainer.precision, device),
                bad_samples=BadSampleLog("skip", run_dir),
                sinks=[writer],
                progress=progress,
                stop=stop,
            )
    except EvaluationStopped as e:
        raise Stopped(
            f"cvtrain predict {e}: predictions.json was not written; run the same command again to predict "
            f"{cfg.inputs}."
        ) from None
    finally:
        progress.stop()
    show(task.show_predictions(writer.records, run_dir))
    log.info("%d predictions written to %s", len(writer.records), run_dir)
    return writer.records
