import contextlib
import errno
import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch

from cvtrain.engine import checkpoint
from cvtrain.engine.checkpoint import (
    CheckpointWriteError,
    load_checkpoint,
    remove_stale_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cvtrain.engine.loop import fit
from cvtrain.engine.state import FitProgress
from cvtrain.errors import CvtrainError
from cvtrain.overrides import checkpoint_group_choices
from tests.engine.test_loop import make_run

REPO = Path(__file__).resolve().parents[2]


def _state() -> dict:
    return {"model": {"w": torch.ones(2)}, "config": {"a": 1}, "class_names": ["x"], "rng": rng_state()}


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    save_checkpoint(_state(), tmp_path / "c" / "last.ckpt")
    state = load_checkpoint(tmp_path / "c" / "last.ckpt")
    assert torch.equal(state["model"]["w"], torch.ones(2)) and state["class_names"] == ["x"]


def test_rng_states_restore_every_generator() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


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


# --- a checkpoint carrying pickled Python objects is refused, and nothing in it runs ---------------------------


class TouchFile:
    """Unpickled unsafely, this creates `marker` (pickle calls `Path(marker).touch()`)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


class ShellCommand:
    """Unpickled unsafely, this runs `touch marker` in a shell."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _payload_checkpoint(path: Path, payload: object, legacy: bool) -> Path:
    state = {"model": {"w": torch.ones(2)}, "config": {"evil": payload}, "class_names": ["x"]}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy_format"])
@pytest.mark.parametrize("payload", [TouchFile, ShellCommand])
def test_a_checkpoint_carrying_code_is_refused_and_nothing_in_it_runs(
    tmp_path: Path, payload: type, legacy: bool
) -> None:
    # The payload is real: loading it the unsafe way creates its marker file.
    proof = tmp_path / "proof"
    torch.load(_payload_checkpoint(tmp_path / "proof.ckpt", payload(proof), legacy), weights_only=False)
    assert proof.exists()

    marker = tmp_path / "marker"
    path = _payload_checkpoint(tmp_path / "evil.ckpt", payload(marker), legacy)
    with pytest.raises(CvtrainError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message
    assert "pickled Python objects" in message and "refuses to run" in message
    assert "re-save the weights as plain tensors" in message
    assert (
        "\x1b[" not in message and "Traceback" not in message
    )  # torch's own text, ANSI codes included, is not shown
    # The command line peeks at the checkpoint's config groups before Hydra starts: that is safe too.
    assert checkpoint_group_choices([f"ckpt={path}"]) == []
    assert not marker.exists()


def _real_checkpoint(path: Path) -> Path:
    save_checkpoint({**_state(), "model": {"w": torch.randn(1000)}, "step": 6, "epoch": 1}, path)
    return path


def test_truncated_empty_and_foreign_files_are_clear_errors_naming_the_file(tmp_path: Path) -> None:
    whole = _real_checkpoint(tmp_path / "whole.ckpt").read_bytes()
    files = {
        "truncated.ckpt": (whole[: len(whole) // 2], "truncated or damaged"),
        "cut_at_the_end.ckpt": (whole[:-10], "truncated or damaged"),
        "empty.ckpt": (b"", "empty (0 bytes"),
        "picture.ckpt": (b"\x89PNG\r\n\x1a\n" + bytes(64), "it is a PNG image"),
        "photo.ckpt": (b"\xff\xd8\xff\xe0" + bytes(64), "it is a JPEG image"),
        "notes.ckpt": (b"epoch 3 was the best\n", "it is a text file"),
        "lfs.ckpt": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "git lfs pull"),
        "zeros.ckpt": (bytes(10), "damaged or was not written by torch.save"),
    }
    for name, (data, expected) in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CvtrainError) as caught:
            load_checkpoint(tmp_path / name)
        message = str(caught.value)
        assert str(tmp_path / name) in message and expected in message, (name, message)
        assert "\x1b[" not in message


def test_torch_files_that_are_not_cvtrain_checkpoints_say_what_they_hold(tmp_path: Path) -> None:
    with pytest.raises(CvtrainError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    torch.save(torch.zeros(3, 4), tmp_path / "tensor.pt")
    with pytest.raises(
        CvtrainError, match=r"tensor\.pt is not a cvtrain checkpoint: it holds a single tensor"
    ):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CvtrainError, match="it holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "weights.pt")
    with pytest.raises(CvtrainError, match="no 'model' entry .it looks like a bare model state_dict"):
        load_checkpoint(tmp_path / "weights.pt")
    torch.save({"model": {}, "config": {}}, tmp_path / "other.pt")
    with pytest.raises(CvtrainError, match="not a cvtrain checkpoint: it has no 'class_names' entry"):
        load_checkpoint(tmp_path / "other.pt")


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
    real = checkpoint.atomic_write

    @contextlib.contextmanager
    def atomic_write(path: Path, **kwargs: Any) -> Iterator[BinaryIO]:
        with real(path, **kwargs) as f:
            if Path(path).name == name:
                f.write(b"x" * 4096)
                raise OSError(errno.ENOSPC, "No space left on device")
            yield f

    monkeypatch.setattr(checkpoint, "atomic_write", atomic_write)


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
