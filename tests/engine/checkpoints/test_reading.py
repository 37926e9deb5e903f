"""Reading checkpoints: with weights_only=True, so a file carrying code is refused and nothing in it runs; a file
that is not a cvtrain checkpoint is one message naming it, what it is, and what to do."""

import os
from pathlib import Path

import pytest
import torch

from cvtrain.engine.checkpoints.reading import load_checkpoint
from cvtrain.engine.checkpoints.writing import save_checkpoint
from cvtrain.errors import CvtrainError
from cvtrain.overrides import checkpoint_group_choices
from tests.engine.checkpoints.test_writing import _real_checkpoint, _state


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    save_checkpoint(_state(), tmp_path / "c" / "last.ckpt")
    state = load_checkpoint(tmp_path / "c" / "last.ckpt")
    assert torch.equal(state["model"]["w"], torch.ones(2)) and state["class_names"] == ["x"]


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
