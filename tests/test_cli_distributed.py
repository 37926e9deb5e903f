"""DDP through the real launcher: `torchrun --nproc_per_node=2 -m cvtrain.cli fit ...` on the CPU (gloo).

Each process trains on its shard and evaluates its share of the validation set; the merged metrics must equal a
one-process `cvtrain eval` of the checkpoint rank 0 wrote (same model, every image counted once).
"""

from pathlib import Path

import pytest

from tests.conftest import FAST, read_results, run_cli

pytestmark = pytest.mark.slow  # several processes: `make test-slow`, as design.md says

CASES = {
    "classification": ("data.train_per_class=16", "data.val_per_class=7", "data.batch_size=8"),
    "segmentation": (
        "+experiment=shapes_unet",
        "model.base_width=4",
        "data.train_images=16",
        "data.val_images=9",
        "data.scene_size=32",
        "data.batch_size=4",
    ),
    "detection": (
        "+experiment=shapes_faster_rcnn",
        "model.min_size=64",
        "model.max_size=64",
        "model.box_score_thresh=0.001",  # an untrained head still returns boxes to score
        "data.train_images=32",
        "data.val_images=15",
        "data.scene_size=64",
        "data.eval_batch_size=1",  # a detector's scores move in the last bits with the batch's composition
    ),
}
HEADLINE = {
    "classification": ("top1_acc", "top5_acc", "loss"),
    "segmentation": ("miou", "pixel_acc"),
    "detection": ("voc_map", "voc07_map", "map", "map_50"),
}
STEPS = {"classification": 5, "segmentation": 2, "detection": 2}  # per process: 80/2/8, 16/2/4, 32/2/8


@pytest.mark.parametrize("task", sorted(CASES))
def test_two_process_fit_matches_a_one_process_eval_of_its_checkpoint(task: str, tmp_path: Path) -> None:
    run_dir, eval_dir = tmp_path / "fit", tmp_path / "eval"
    common = (*FAST, f"data.cache_dir={tmp_path / 'cache'}")
    run_cli(
        "fit", *CASES[task], *common, "trainer.epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path, nproc=2
    )
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    run_cli("eval", f"ckpt={ckpt}", *common, f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    fit, single = read_results(run_dir), read_results(eval_dir)
    assert fit["steps"] == STEPS[task]
    assert fit["val_images"] == single["val_images"]
    assert single[HEADLINE[task][0]] > 0  # a metric that is 0 either way would prove nothing
    for metric in HEADLINE[task]:
        assert fit[metric] == pytest.approx(single[metric], abs=1e-9), metric
