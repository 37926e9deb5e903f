"""`cvtrain eval ckpt=PATH`: re-evaluate a checkpoint with the config it was trained with (plus overrides);
`cvtrain eval predictions=FILE`: score a saved predictions file (`cvtrain/commands/score.py`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cvtrain.commands.score import score_predictions_file
from cvtrain.composition import build_setup, config_record, eval_loader, finish, list_annotation_problems
from cvtrain.config import to_typed
from cvtrain.engine.bad_samples import BadSampleLog
from cvtrain.engine.checkpoints.restore import restore
from cvtrain.engine.loop import evaluate
from cvtrain.engine.recorders.console import progress_bar
from cvtrain.engine.reporting import log, write_json
from cvtrain.engine.signals import EvaluationStopped, Stopped, StopRequest
from cvtrain.models.weights import weights_replaced_by_checkpoint


def run_eval(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    if raw_cfg.ckpt is None:  # then predictions=FILE (the command line's check: `overrides.NEEDS`)
        cfg = to_typed(raw_cfg)
        results = score_predictions_file(cfg)
        finish(run_dir, results, None, title=f"{cfg.predictions} on {cfg.data.format}")
        return results
    started = time.perf_counter()
    restored = restore(raw_cfg, overrides)
    cfg, state = restored.cfg, restored.state
    with weights_replaced_by_checkpoint():
        setup = build_setup(
            cfg, need_train=False, class_names=restored.class_names, mean_image=restored.mean_image
        )
    restored.load_weights(setup.model)
    annotations_skipped = list_annotation_problems(setup.data, run_dir)
    sinks = [setup.outputs.results_writer(setup.data.val, run_dir)] if cfg.eval.save_predictions else []
    progress = progress_bar(cfg.logger)
    try:
        with StopRequest() as stop:
            log.info(
                "eval %s (epoch %d, step %d) on %s: %d val images, device %s",
                cfg.ckpt, state["epoch"], state["step"], cfg.data.format, len(setup.data.val), setup.device,
            )  # fmt: skip
            metrics, evaluator = evaluate(
                model=setup.model,
                loader=eval_loader(setup, setup.data.val),
                task=setup.task,
                evaluator=setup.task.evaluator(setup.data.val),
                device=setup.device,
                amp_dtype=setup.amp_dtype,
                bad_samples=BadSampleLog(cfg.data.on_bad_image.value, run_dir),
                sinks=sinks,
                progress=progress,
                stop=stop,
            )
    except EvaluationStopped as e:
        unwritten = "results.json was not written" + (", nor predictions.json" if sinks else "")
        raise Stopped(
            f"cvtrain eval {e}: {unwritten}; run the same command again to evaluate {cfg.ckpt}."
        ) from None
    finally:
        progress.stop()
    write_json(run_dir / "config.json", config_record(cfg))
    results = {
        "status": "ok",
        **metrics,
        "ckpt": str(cfg.ckpt),
        "epoch": state["epoch"],
        "step": state["step"],
        "val_images": len(setup.data.val),
        "bad_annotations_skipped": annotations_skipped,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "model": cfg.model.name,
        "data": cfg.data.format,
    }
    finish(run_dir, results, evaluator, title=f"eval {Path(cfg.ckpt).name}")
    return results
