import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cvtrain.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cvtrain.errors import CvtrainError


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


def test_missing_or_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CvtrainError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CvtrainError, match="not a cvtrain checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "garbage.ckpt").write_bytes(b"\x00" * 10)
    with pytest.raises(CvtrainError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "garbage.ckpt")
