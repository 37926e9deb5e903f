"""Writing checkpoints: atomic (a crash or a full disk leaves the previous one intact), a failed write said in one
message listing what is on disk, and the temporaries of a killed write removed."""

import contextlib
import errno
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import pytest
import torch

from cvtrain.engine.checkpoints import writing
from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.training import rng_state
from cvtrain.engine.checkpoints.writing import CheckpointWriteError, remove_stale_temporaries, save_checkpoint
from cvtrain.engine.loop import fit
from cvtrain.engine.state import FitProgress
from cvtrain.errors import CvtrainError
from tests.engine.test_loop import make_run

REPO = Path(__file__).resolve().parents[3]


def _state() -> dict:
    return {"model": {"w": torch.ones(2)}, "config": {"a": 1}, "class_names": ["x"], "rng": rng_state()}


def test_a_crash_mid_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    save_checkpoint(_state(), path)
    before = path.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # e.g. the job is killed while torch.save writes

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(), path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    load_checkpoint(path)


def _real_checkpoint(path: Path) -> Path:
    save_checkpoint({**_state(), "model": {"w": torch.randn(1000)}, "step": 6, "epoch": 1}, path)
    return path


# --- a full disk: a clear error, nothing left behind, the previous checkpoint intact ---------------------------


def _failing_save(error: BaseException):
    def save(obj: object, f) -> None:  # writes part of the file, then fails as torch does on a full disk
        f.write(b"x" * 4096)
        raise error

    return save


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["torch_zip_writer", "enospc"],
)
def test_a_full_disk_is_a_clear_error_that_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    folder = tmp_path / "checkpoints"
    path = _real_checkpoint(folder / "last.ckpt")
    before = path.read_bytes()
    state = {**_state(), "model": {"w": torch.zeros(1_000_000)}}  # 4 MB of weights
    monkeypatch.setattr(torch, "save", _failing_save(error))
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(total=10**9, used=10**9, free=4096))
    with pytest.raises(CheckpointWriteError) as caught:
        save_checkpoint(state, path)
    message = str(caught.value)
    assert isinstance(caught.value, CvtrainError)
    assert f"could not write checkpoint {path}: the disk is full" in message
    assert "needs about 4.0 MB, 4.1 kB free" in message
    assert f"On disk in {folder}: last.ckpt (the previous one, complete, step 6, after epoch 1)" in message
    assert f"trainer.resume={path}" in message
    assert "hydra.run.dir=" in message
    assert sorted(folder.iterdir()) == [path]  # no temporary file left behind
    assert path.read_bytes() == before


def test_the_os_error_under_torchs_writer_error_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def save(obj: object, f) -> None:  # torch's zip writer, on a full disk, as seen on a real tmpfs
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
            ) from None

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(CheckpointWriteError) as caught:
        save_checkpoint(_state(), tmp_path / "last.ckpt")
    assert f"{tmp_path / 'last.ckpt'}: the disk is full (No space left on device): " in str(caught.value)


def _full_disk_for(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoint writes to a file called `name` run out of space after a first part; the others succeed."""
    real = writing.atomic_write

    @contextlib.contextmanager
    def atomic_write(path: Path, **kwargs: Any) -> Iterator[BinaryIO]:
        with real(path, **kwargs) as f:
            if Path(path).name == name:
                f.write(b"x" * 4096)
                raise OSError(errno.ENOSPC, "No space left on device")
            yield f

    monkeypatch.setattr(writing, "atomic_write", atomic_write)


def test_a_full_disk_at_the_first_last_ckpt_names_the_best_ckpt_just_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, epochs=2)  # 8 steps an epoch: best.ckpt, then last.ckpt after the first
    _full_disk_for("last.ckpt", monkeypatch)
    with pytest.raises(CheckpointWriteError) as caught:
        fit(run, FitProgress())
    folder = tmp_path / "checkpoints"
    best = folder / "best.ckpt"
    assert [p.name for p in folder.iterdir()] == ["best.ckpt"]  # no temporary, no partial last.ckpt
    assert load_checkpoint(best)["step"] == 8
    message = str(caught.value)
    assert message.startswith(
        f"could not write checkpoint {folder / 'last.ckpt'}: the disk is full (No space left on device): "
    )
    assert (
        f"No part of it was left behind (its temporary file is removed). On disk in {folder}: "
        "best.ckpt (complete, step 8, after epoch 1). Free space there, or put the run directory on a disk with "
        "room (hydra.run.dir=DIR, for a sweep hydra.sweep.dir=DIR), then resume from the latest with "
        f"trainer.resume={best} (the write that failed was of step 8)."
    ) in message
    assert "no previous checkpoint" not in message


def test_a_full_disk_at_the_very_first_write_says_nothing_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, epochs=2)
    _full_disk_for("best.ckpt", monkeypatch)
    with pytest.raises(CheckpointWriteError) as caught:
        fit(run, FitProgress())
    folder = tmp_path / "checkpoints"
    assert list(folder.iterdir()) == []
    assert str(caught.value).startswith(
        f"could not write checkpoint {folder / 'best.ckpt'}: the disk is full"
    )
    assert (
        f"On disk in {folder}" not in str(caught.value)
        and f"No checkpoint is on disk in {folder}: the run has nothing to resume from. Free space there, or put "
        "the run directory on a disk with room (hydra.run.dir=DIR, for a sweep hydra.sweep.dir=DIR)."
    ) in str(caught.value)


def test_a_later_full_disk_lists_each_checkpoint_and_resumes_from_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "checkpoints"
    save_checkpoint({**_state(), "step": 8, "epoch": 2, "batches_done": 0}, folder / "best.ckpt")
    save_checkpoint({**_state(), "step": 14, "epoch": 3, "batches_done": 2}, folder / "last.ckpt")
    (folder / "notes.ckpt").write_text("not a checkpoint")
    _full_disk_for("last.ckpt", monkeypatch)
    with pytest.raises(CheckpointWriteError) as caught:
        save_checkpoint({**_state(), "step": 16, "epoch": 4, "batches_done": 0}, folder / "last.ckpt")
    assert (
        f"On disk in {folder}: best.ckpt (complete, step 8, after epoch 2); last.ckpt (the previous one, "
        "complete, step 14, 2 batches into epoch 4); notes.ckpt (not readable as a cvtrain checkpoint). "
    ) in str(caught.value)
    assert str(caught.value).endswith(
        f"then resume from the latest with trainer.resume={folder / 'last.ckpt'} (the write that failed was of "
        "step 16)."
    )


def test_an_error_that_is_not_about_writing_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "save", _failing_save(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        save_checkpoint(_state(), tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []


# --- temporaries left by a killed write ------------------------------------------------------------------------


def test_stale_temporaries_are_removed_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "checkpoints"
    last, best = _real_checkpoint(folder / "last.ckpt"), _real_checkpoint(folder / "best.ckpt")
    for i in range(10):
        name = "last" if i % 2 else "best"
        (folder / f".{name}.ckpt.k{i}x_q9z.tmp").write_bytes(b"\0" * 1000)
    outside = tmp_path / "precious.ckpt"
    outside.write_bytes(b"keep")
    (folder / ".last.ckpt.link0000.tmp").symlink_to(outside)  # a link is never followed nor removed
    (folder / ".best.ckpt.dir00000.tmp").mkdir()
    keep = [
        "notes.tmp",
        ".hidden",
        ".last.ckpt.tmp",
        "last.ckpt.abcd1234.tmp",  # not a hidden temporary
        ".model.pt.abcd1234.tmp",  # not a checkpoint's
        ".last.ckpt.abcd1234.tmp.bak",
        "epoch_3.ckpt",
    ]
    for name in keep:
        (folder / name).write_bytes(b"other")
    (folder / "sub").mkdir()
    (folder / "sub" / ".last.ckpt.abcd1234.tmp").write_bytes(b"not at the top")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    with caplog.at_level(logging.INFO):
        assert remove_stale_temporaries(folder) == 10
    assert "removed 10 stale temporary checkpoint files (10.0 kB)" in caplog.text
    left = {p.name for p in folder.iterdir()}
    assert left == {
        "last.ckpt",
        "best.ckpt",
        ".last.ckpt.link0000.tmp",
        ".best.ckpt.dir00000.tmp",
        "sub",
        *keep,
    }
    for p, data in before.items():
        if p.exists():
            assert p.read_bytes() == data
    assert outside.read_bytes() == b"keep"
    load_checkpoint(last), load_checkpoint(best)
    assert remove_stale_temporaries(folder) == 0
    assert remove_stale_temporaries(tmp_path / "absent") == 0


def test_the_temporary_of_a_killed_write_is_recognised_as_stale(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    killed = (
        "import os, sys; from cvtrain.files import atomic_write\n"
        "with atomic_write(sys.argv[1], fsync=True) as f:\n"
        "    f.write(b'half a checkpoint'); f.flush(); os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", killed, str(path)], cwd=REPO, check=False)
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".last.ckpt.") and leftover.name.endswith(".tmp")
    assert remove_stale_temporaries(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []
