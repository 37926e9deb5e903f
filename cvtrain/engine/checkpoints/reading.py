"""Reading checkpoints: loaded with `weights_only=True`, every way a file can be wrong said in one message.

A checkpoint holds only tensors and plain values: a file that carries pickled Python objects is refused, and
nothing in it runs.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from cvtrain.errors import CvtrainError
from cvtrain.files import format_bytes

_EXPECTED = "the dict `cvtrain fit` writes (model weights, config, class names)"
_PICK_ANOTHER = "use another checkpoint (e.g. best.ckpt or last.ckpt in the run's checkpoints/ folder)"


class CheckpointError(CvtrainError):
    """A checkpoint file that cannot be read: missing, damaged, foreign, or carrying pickled Python objects."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)`; every way a file can be wrong is a
    `CheckpointError` naming the file, saying what it is, and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist (give ckpt=PATH or trainer.resume=PATH to a .ckpt file)."
        )
    foreign = _sniff(path)
    if foreign:  # never handed to the unpickler
        raise CheckpointError(f"{path} is not a cvtrain checkpoint: it is {foreign}; {_PICK_ANOTHER}.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(_unpickling_message(path, str(e))) from e
    except Exception as e:
        raise CheckpointError(_damaged_message(path, e)) from e
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not a cvtrain checkpoint: it holds {_describe(state)}, not {_EXPECTED}; {_PICK_ANOTHER}."
        )
    for key in ("model", "config", "class_names"):
        if key not in state:
            bare = state and all(isinstance(v, torch.Tensor) for v in state.values())
            what = " (it looks like a bare model state_dict)" if bare else ""
            raise CheckpointError(
                f"{path} is not a cvtrain checkpoint: it has no {key!r} entry{what}; cvtrain expects {_EXPECTED}."
            )
    return state


def peek(path: str | Path) -> dict[str, Any] | None:
    """A checkpoint's entries with its weights memory-mapped, not read; None when the file cannot be read as one.
    For a look before (or beside) the real load, which says what is wrong with a file: never an error itself."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - whatever the file is, load_checkpoint says it
        return None
    return state if isinstance(state, dict) else None


def _sniff(path: Path) -> str | None:
    """What a file that is not a torch.save file is (from its first bytes), or None when it may be one."""
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes: a copy that never started, or a file truncated to nothing)"
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"\x80")):  # torch's zip format, or its legacy pickle format
        return None
    kinds = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"GIF8": "a GIF image",
        b"\x1f\x8b": "a gzip archive (unpack it first)",
        b"\x89HDF": "an HDF5 file (Keras / h5py), not a PyTorch file",
        b"version https://git-lfs": "a Git LFS pointer, not the file itself (fetch it with `git lfs pull`)",
    }
    for magic, kind in kinds.items():
        if head.startswith(magic):
            return kind
    if len(head) > 10 and head[8:10] == b'{"':
        return "a safetensors file (cvtrain checkpoints are written by torch.save)"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "a tar archive (unpack it first)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not a character cut at the end of what was read
            return None
        text = head[: e.start].decode("utf-8")
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"a text file ({size} bytes, beginning {first!r})"
    return None


def _unpickling_message(path: Path, torch_message: str) -> str:
    # torch words it "Unsupported global: GLOBAL getattr was not an allowed global by default" or "Trying to load
    # unsupported GLOBAL posix.system whose module posix is blocked".
    found = re.search(r"GLOBAL ([\w.]+)", torch_message)
    if found is None:
        return _damaged_message(path, pickle.UnpicklingError(torch_message))
    name = found.group(1)
    if name.startswith("torch.") and not _zip_is_complete(path):
        return (
            f"cannot read checkpoint {path}: it names the torch internal {name}, which loading with "
            "weights_only=True does not allow: the file is damaged (truncated?) or was written by a different "
            f"PyTorch version; {_PICK_ANOTHER}."
        )
    return (
        f"refusing to load checkpoint {path}: it holds pickled Python objects (it asks to run {name}), which "
        "cvtrain refuses to run: checkpoints are loaded with torch.load(weights_only=True), so that a file can "
        "carry tensors and plain values but never code. Nothing in it was run. If you trust where the file comes "
        "from, re-save the weights as plain tensors (load it once yourself and torch.save a dict of tensors, "
        "numbers, strings and lists); otherwise delete it."
    )


def _zip_is_complete(path: Path) -> bool:
    """Whether a file ends as a zip archive (torch's format) does: with its end-of-central-directory record."""
    with path.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return True  # not a zip: nothing to say
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 65_557))  # the record (22 bytes) plus at most a 64 kB comment
        tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    return at >= 0 and at + 22 + int.from_bytes(tail[at + 20 : at + 22], "little") == len(tail)


def _damaged_message(path: Path, error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    truncated = (
        isinstance(error, EOFError)
        or not _zip_is_complete(path)
        or any(s in text for s in ("central directory", "unexpected EOF", "truncated"))
    )
    size = format_bytes(path.stat().st_size)
    if truncated:
        return (
            f"cannot read checkpoint {path}: it is truncated or damaged ({size}; torch could not find the end of "
            "its data): a copy that did not finish, or a file written by a process stopped mid-write; copy it "
            f"again or {_PICK_ANOTHER}."
        )
    # Past torch's preamble about weights_only ("Weights only load failed. In PyTorch 2.6, ...") to its reason.
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.S)
    reason = found.group(1) if found else text.splitlines()[0] if text else type(error).__name__
    reason = " ".join(reason.split())[:200]
    return (
        f"cannot read checkpoint {path}: it is damaged or was not written by torch.save ({size}; torch says: "
        f"{reason}); {_PICK_ANOTHER}."
    )


def _describe(obj: Any) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a single tensor of shape {tuple(obj.shape)}"
    return f"a {type(obj).__name__}"
