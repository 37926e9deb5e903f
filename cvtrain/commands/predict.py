"""`cvtrain predict ckpt=PATH inputs=FILE_OR_DIR`: run a checkpoint on images and write what it sees.

No dataset is needed: the inputs go through the task's evaluation transform and the engine's evaluation loop,
with the task outputs' `predict_writer` as the only sink (and no evaluator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cvtrain.composition import amp_dtype_for, outputs_of, seed_everything, task_of
from cvtrain.data.inputs import InputImages
from cvtrain.data.transforms.pipelines import eval_transform
from cvtrain.engine import distributed, loaders
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoints.restore import restore
from cvtrain.engine.loop import evaluate
from cvtrain.engine.recorders.console import progress_bar
from cvtrain.engine.reporting import log, show
from cvtrain.engine.signals import EvaluationStopped, Stopped, StopRequest
from cvtrain.host_memory import keep_freed_memory
from cvtrain.models.build import build_model
from cvtrain.models.weights import weights_replaced_by_checkpoint


def run_predict(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> list[dict[str, Any]]:
    restored = restore(raw_cfg, overrides)
    cfg = restored.cfg
    seed_everything(cfg.trainer.seed, deterministic=False)
    device = distributed.setup(cfg.trainer.device)
    keep_freed_memory(device)
    task = task_of(cfg, restored.class_names, restored.mean_image)
    with weights_replaced_by_checkpoint():
        model = build_model(cfg.model, num_classes=len(restored.class_names)).to(device)
    restored.load_weights(model)
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
    outputs = outputs_of(cfg, restored.class_names)
    writer = outputs.predict_writer(run_dir)
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
    show(outputs.show_predictions(writer.records, run_dir))
    log.info("%d predictions written to %s", len(writer.records), run_dir)
    return writer.records
