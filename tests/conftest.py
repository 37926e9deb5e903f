"""Shared test helpers: tiny datasets written in real on-disk formats, and running the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from cvtrain import composition
from cvtrain.commands import predict
from cvtrain.config import Config, to_typed
from cvtrain.config.compose import compose_config as compose_config_raw
from cvtrain.config.compose import config_composer
from cvtrain.host_memory import has_glibc_malloc

REPO = Path(__file__).resolve().parents[1]
# The shared fixtures beside the checkout; CVTRAIN_FIXTURES points elsewhere (a git worktree of the checkout).
FIXTURES = Path(os.environ.get("CVTRAIN_FIXTURES", REPO.parent / "shared" / "fixtures"))


def fixture_dir(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"shared fixture {path} is absent")
    return path


VOC_SEG_SAMPLE_ID = "2007_000063"  # the VOC sample's one image with a segmentation mask


def voc_seg_sample(root: Path) -> Path:
    """The real VOC sample as a segmentation devkit under `root`, with the ImageSets it lacks: its one segmented
    image is both train and val (images and masks linked, not copied). Returns the `VOCdevkit` folder."""
    source = fixture_dir("voc-sample") / "VOCdevkit" / "VOC2012"
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    for folder in ("JPEGImages", "SegmentationClass"):
        (voc / folder).symlink_to(source / folder)
    for split in ("train", "val"):
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(f"{VOC_SEG_SAMPLE_ID}\n")
    return voc.parent


def write_image(
    path: Path,
    size: tuple[int, int] = (24, 20),
    colour: tuple[int, int, int] = (200, 30, 30),
    fmt: str | None = None,
    mode: str = "RGB",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))  # the same pixels in every run
    array = np.clip(np.array(colour)[None, None] + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(
        np.uint8
    )
    Image.fromarray(array).convert(mode).save(path, format=fmt)
    return path


# How a camera stores the displayed picture for each EXIF orientation: the inverse of what PIL's
# ImageOps.exif_transpose applies to display it (orientations 6 and 8 are each other's inverse).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def block_picture(width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] of 8x8 blocks, each of its own colour: every flip or turn of it is a different picture,
    and a JPEG of it (quality 100, 4:4:4) is within a few levels of it (each DCT block is flat)."""
    rows, cols = np.indices((height, width)) // 8
    return np.stack([40 * cols % 250 + 5, 50 * rows % 250 + 5, (30 * (rows + cols)) % 250 + 5], -1).astype(
        np.uint8
    )


def write_oriented(path: Path, shown: np.ndarray, orientation: int, fmt: str = "JPEG") -> Path:
    """Save the picture `shown` (uint8 [H, W, 3], as displayed) as a phone does: the pixels stored turned or
    mirrored for EXIF `orientation` (1..8), with the orientation tag saying how to display them."""
    stored = Image.fromarray(shown)
    if STORED_AS[orientation] is not None:
        stored = stored.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    lossless = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    stored.save(path, format=fmt, exif=exif, **lossless)
    return path


def make_imagefolder(
    root: Path, classes: tuple[str, ...] = ("n01", "n02", "n03"), per_class: int = 4
) -> Path:
    """root/{train,val}/<class>/<i>.JPEG with a distinct colour per class."""
    colours = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40)]
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_image(root / split / name / f"{i}.JPEG", colour=colours[c % 4], fmt="JPEG")
    return root


def run_cli(
    *args: str, cwd: Path, check: bool = True, timeout: int = 300, nproc: int = 1
) -> subprocess.CompletedProcess:
    """Run `cvtrain ARGS` as a user would, in a subprocess (Hydra owns global state); with `nproc` > 1 as
    `torchrun --nproc_per_node=NPROC -m cvtrain.cli ARGS` (DDP, gloo on the CPU)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    launcher = [sys.executable, "-m"]
    if nproc > 1:
        launcher += ["torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"]
        env["OMP_NUM_THREADS"] = "1"  # one thread per process: they share the cores
    proc = subprocess.run(
        [*launcher, "cvtrain.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"cvtrain {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


# Runs cvtrain.cli.main on its arguments, then says on stderr which of torch / torchvision got imported.
_REPORT_IMPORTS = """
import sys
from cvtrain.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as e:
    code = e.code
print("imported:", [m for m in ("torch", "torchvision") if m in sys.modules], file=sys.stderr)
sys.exit(code)
"""


def run_main_reporting_imports(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`cvtrain ARGS` in a subprocess whose stderr ends with `imported: [...]`: which of torch and torchvision
    the command imported (`imported: []` for an answer that needs neither)."""
    return subprocess.run(
        [sys.executable, "-c", _REPORT_IMPORTS, *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_until(
    args: list[str], cwd: Path, reached: Callable[[str], bool], send: signal.Signals
) -> subprocess.CompletedProcess:
    """Start `cvtrain ARGS`, send `send` at the first line of its output that is `reached`, wait for it to end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvtrain.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if reached(line):
            proc.send_signal(send)
            break
    rest, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest, "")


def run_script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python scripts/NAME ARGS` from the repository root, as its docstring tells a user to."""
    return subprocess.run(
        [sys.executable, f"scripts/{name}", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def compose_config(*overrides: str) -> Config:
    """The typed config `cvtrain fit OVERRIDES` would run with, without running anything (Hydra's global state is
    set up and cleared around the call, so tests stay independent)."""
    return to_typed(compose_raw(*overrides))


def compose_raw(*overrides: str) -> DictConfig:
    """The composed config before conversion to the schema's dataclasses (for tests of the composition itself)."""
    command = next((o.split("=", 1)[1] for o in overrides if o.startswith("command=")), "fit")
    with config_composer():
        return compose_config_raw([o for o in overrides if not o.startswith("command=")], command)


def read_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# Settings that make a CLI run take seconds: tiny images, a few steps, no worker processes.
FAST = ("trainer.device=cpu", "data.num_workers=0", "logger.console.progress=false", "trainer.log_every=1")

# A Faster R-CNN that trains in seconds on 64 px images.
TINY_FASTER_RCNN = (
    "model=faster_rcnn",
    "model.backbone=mobilenet_v3_large_320_fpn",
    "model.min_size=64",
    "model.max_size=64",
    "model.box_batch_size_per_image=16",
    "model.rpn_post_nms_top_n_test=30",
    "model.box_score_thresh=0.001",  # an untrained head still returns boxes to score
)


# pycocotools' COCOeval.stats for the COCO API's own fake box and mask results on `coco-eval-parity` (the fixture's
# README; official_printout.txt prints them to 3 decimals). pycocotools under another numpy, or faster-coco-eval,
# may differ in the last ulp (see cvtrain/metrics/coco.py): compare with `same_coco_stats`.
def tiny_shapes(cache: Path) -> tuple[str, ...]:
    """A CPU run on `data=shapes` at its smallest: 4 training and 6 validation scenes of 64 px, batches of 2."""
    return (
        *FAST,
        "data=shapes",
        f"data.cache_dir={cache}",
        "data.scene_size=64",  # aug=yolo letterboxes to data.image_size, which follows it (a multiple of 32)
        "data.train_images=4",
        "data.val_images=6",
        "data.batch_size=2",
    )


OFFICIAL_COCO_STATS = {
    "bbox": [
        0.5045806987249628, 0.6969727247299577, 0.5729816669904824, 0.5856257209410443, 0.5193996948036719,
        0.5013978986347466, 0.38681277964578054, 0.5936795762842003, 0.595352982877607, 0.6398109626113442,
        0.5664205978994309, 0.5642905982905982,
    ],
    "segm": [
        0.3195452758576433, 0.5622883972521636, 0.29892653412086784, 0.3873740315997838, 0.31018272403369485,
        0.3269339071005138, 0.2682297225711534, 0.41544868114906375, 0.4168394992198818, 0.4694498622754236,
        0.37675922666197265, 0.3814715099715099,
    ],
}  # fmt: skip
PARITY_RESULTS = {
    "bbox": "instances_val2014_fakebbox100_results.json",
    "segm": "instances_val2014_fakesegm100_results.json",
}


def same_coco_stats(ours: list[float], reference: list[float]) -> bool:
    """Equal to 1e-12: the backends' stats differ by at most 2.2e-16 (one ulp of a precision value)."""
    return len(ours) == len(reference) and all(
        abs(a - b) <= 1e-12 for a, b in zip(ours, reference, strict=True)
    )


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
needs_glibc = pytest.mark.skipif(not has_glibc_malloc(), reason="malloc's knobs are glibc's")


@pytest.fixture(autouse=True)
def _no_malloc_settings_in_the_test_process(monkeypatch):
    """`fit`, `eval` and `bench` run in-process here set malloc up for a run (`cvtrain.host_memory`); the
    test process keeps glibc's defaults, whatever ran before. Commands run through `run_cli` do set it."""
    monkeypatch.setattr(composition, "keep_freed_memory", lambda device: False)
    monkeypatch.setattr(predict, "keep_freed_memory", lambda device: False)


@contextlib.contextmanager
def gpu_waits() -> Iterator[list[str]]:
    """Counts the operations inside that make the host wait for the GPU, as torch's CUDA sync debug mode sees them:
    `.item()`, `nonzero`, copies to the host, and every copy to the device that is not `non_blocking`. (It does
    not see a `non_blocking` copy from pageable memory, which the driver may still stage synchronously: the code
    copies from pinned memory.) The list is filled when the block ends."""
    waits: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield waits
        finally:
            torch.cuda.set_sync_debug_mode("default")
    waits.extend(str(w.message) for w in caught if "synchronizing CUDA operation" in str(w.message))
