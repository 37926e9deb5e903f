"""DDP through the real launcher: `torchrun --nproc_per_node=2 -m cvtrain.cli fit ...` on the CPU (gloo), and two
"machines" (two torchrun agents on localhost joined by torchrun's own rendezvous).

Each process trains on its shard and evaluates its share of the validation set; the merged metrics must equal a
one-process `cvtrain eval` of the checkpoint rank 0 wrote (same model, every image counted once).
"""

import os
import signal
import socket
import subprocess
import sys
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


def test_gradient_accumulation_under_ddp(tmp_path: Path) -> None:
    """trainer.accumulate=2 halves the optimizer steps (no gradient sync on the inner micro-batch); the checkpoint
    still evaluates identically. trainer.sync_bn needs GPUs: on the CPU it is a clear error."""
    run_dir, eval_dir = tmp_path / "fit", tmp_path / "eval"
    common = (*FAST, f"data.cache_dir={tmp_path / 'cache'}")
    refused = run_cli(
        "fit", *CASES["classification"], *common, "trainer.sync_bn=true", f"hydra.run.dir={tmp_path / 'bn'}",
        cwd=tmp_path, nproc=2, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "trainer.sync_bn=true needs CUDA" in refused.stdout + refused.stderr
    extra = ("trainer.accumulate=2", "trainer.epochs=1")
    run_cli(
        "fit", *CASES["classification"], *common, *extra, f"hydra.run.dir={run_dir}", cwd=tmp_path, nproc=2
    )
    run_cli(
        "eval",
        f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}",
        *common,
        f"hydra.run.dir={eval_dir}",
        cwd=tmp_path,
    )
    fit, single = read_results(run_dir), read_results(eval_dir)
    assert fit["steps"] == 3  # ceil(5 batches / 2)
    for metric in HEADLINE["classification"]:
        assert fit[metric] == pytest.approx(single[metric], abs=1e-9), metric


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rendezvous(kind: str, port: int, node_rank: int) -> list[str]:
    """torchrun's flags for one of two nodes, as the README's SLURM example gives them."""
    if kind == "c10d":  # elastic rendezvous: the agents agree on node ranks themselves
        return ["--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=cvtrain-test"]
    return [f"--node_rank={node_rank}", "--master_addr=127.0.0.1", f"--master_port={port}"]


@pytest.mark.parametrize("rendezvous", ["c10d", "static"])
def test_two_nodes_through_torchruns_rendezvous_match_a_one_process_eval(
    rendezvous: str, tmp_path: Path
) -> None:
    """Two torchrun agents (`--nnodes=2 --nproc_per_node=1`), as on two machines, in one shared run directory."""
    run_dir, eval_dir = tmp_path / "fit", tmp_path / "eval"
    common = (*FAST, f"data.cache_dir={tmp_path / 'cache'}")
    fit_args = (*CASES["classification"], *common, "trainer.epochs=1", f"hydra.run.dir={run_dir}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "OMP_NUM_THREADS": "1"}
    port = _free_port()
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc_per_node=1",
                *_rendezvous(rendezvous, port, node_rank),
                "-m",
                "cvtrain.cli",
                "fit",
                *fit_args,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: a hung agent is killed with its workers
        )
        for node_rank in (0, 1)
    ]
    try:
        logs = [agent.communicate(timeout=300)[0] for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
    assert [a.returncode for a in agents] == [0, 0], "\n".join(logs)

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    run_cli("eval", f"ckpt={ckpt}", *common, f"hydra.run.dir={eval_dir}", cwd=tmp_path)
    fit, single = read_results(run_dir), read_results(eval_dir)
    assert fit["steps"] == STEPS["classification"]  # 80 images / 2 processes / batch 8
    assert fit["val_images"] == single["val_images"]
    assert single[HEADLINE["classification"][0]] > 0
    for metric in HEADLINE["classification"]:
        assert fit[metric] == pytest.approx(single[metric], abs=1e-9), metric


def test_a_nan_found_at_the_epoch_end_rolls_every_rank_back_together(tmp_path: Path) -> None:
    """With no log line in the epoch, the NaN is found by the epoch end's check, reduced over the ranks: both roll
    back, run the epoch again, and stop together once trainer.nan_retries is spent (no rank left waiting)."""
    proc = run_cli(
        "fit", *CASES["classification"], *FAST, f"data.cache_dir={tmp_path / 'cache'}", "optim.lr=1e12",
        "trainer.epochs=1", "trainer.log_every=1000", "trainer.on_nan=rollback", "trainer.nan_retries=1",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, nproc=2, check=False, timeout=240,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out  # torchrun then prints its own ChildFailedError traceback
    assert "the loss became nan at step 5 (epoch 1): rolled back to step 0 (epoch 1)" in out, out
    assert "the loss became nan at step 5 (epoch 1) after 1 rollbacks (trainer.nan_retries=1)" in out, out
