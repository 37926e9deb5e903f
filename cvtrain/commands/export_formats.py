"""Writing a module in a deployment format, running the written file back, and the parity check between the two.

ONNX: `torch.onnx.export` with its default torch.export-based (dynamo) exporter, a dynamic batch axis (and dynamic
height/width when asked), then `onnx.checker` and an onnxruntime CPU session. TorchScript: `torch.jit.trace`
(deprecated by PyTorch in favour of torch.export, still the format C++ libtorch and older runtimes load), saved,
and read back with `torch.jit.load`. The modules take one image batch and return a tuple of tensors.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvtrain.errors import ConfigError, CvtrainError

FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
INPUT_NAME = "images"
# A protobuf file holds at most 2 GiB; above this the weights go to an external data file next to it.
ONNX_INLINE_LIMIT = 1 << 30

Runner = Callable[[torch.Tensor], list[np.ndarray]]


class ExportMismatch(CvtrainError):
    """The written model's outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class Written:
    path: Path
    details: dict[str, Any]  # what export.json records about the file: exporter, opset, runtime
    run: Runner  # the file loaded back: batch -> outputs as numpy arrays


def check_format(fmt: str) -> str:
    if fmt not in FILES:
        raise ConfigError(f"format={fmt!r} is not an export format; choose one of {', '.join(FILES)}.")
    return fmt


def write(
    fmt: str,
    module: nn.Module,
    example: torch.Tensor,
    out_dir: Path,
    *,
    output_names: Sequence[str],
    dynamic_size: bool,
    opset: int | None,
) -> Written:
    """Write `module` (eval mode, CPU) traced on `example` [B >= 2, 3, H, W] to `out_dir/FILES[fmt]`."""
    path = Path(out_dir) / FILES[check_format(fmt)]
    if fmt == "onnx":
        return _write_onnx(module, example, path, list(output_names), dynamic_size, opset)
    return _write_torchscript(module, example, path)


def _write_onnx(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    output_names: list[str],
    dynamic_size: bool,
    opset: int | None,
) -> Written:
    import onnx
    import onnxruntime

    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if dynamic_size:
        # AUTO: the exporter keeps height/width symbolic and derives the constraints (e.g. multiples of 32).
        dims.update({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO})
    weight_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    for name in ("onnxscript", "onnx_ir"):  # the exporter's optimiser logs every pass at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=output_names,
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=(dims,),
            external_data=weight_bytes > ONNX_INLINE_LIMIT,
            verbose=False,
        )
    except Exception as e:
        raise CvtrainError(
            f"torch.onnx.export could not export the model ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "try format=torchscript"
        ) from e
    try:
        onnx.checker.check_model(str(path), full_check=True)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # the exporter wrote a graph that ONNX or onnxruntime rejects
        path.unlink(missing_ok=True)
        raise CvtrainError(
            f"the exported {path.name} does not load ({type(e).__name__}: {str(e).splitlines()[0]}); "
            "try another export.opset or format=torchscript"
        ) from e

    def run(batch: torch.Tensor) -> list[np.ndarray]:
        return session.run(None, {INPUT_NAME: batch.numpy()})

    opset_used = next(
        o.version for o in onnx.load(str(path), load_external_data=False).opset_import if not o.domain
    )
    details = {
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "opset": opset_used,
        "checked_by": f"onnx.checker {onnx.__version__}",
        "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider",
        "external_data": weight_bytes > ONNX_INLINE_LIMIT,
    }
    return Written(path, details, run)


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> Written:
    with warnings.catch_warnings():
        # PyTorch marks torch.jit as deprecated; the format is what this export was asked for.
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit.* is deprecated", category=DeprecationWarning
        )
        with torch.no_grad():
            traced = torch.jit.trace(module, (example,), check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(batch: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = loaded(batch)
        return [t.numpy() for t in (outputs if isinstance(outputs, tuple) else (outputs,))]

    details = {"exporter": f"torch.jit.trace, torch {torch.__version__}", "runtime": "torch.jit.load"}
    return Written(path, details, run)


def compare(
    module: nn.Module,
    run: Runner,
    batches: Sequence[torch.Tensor],
    *,
    output_names: Sequence[str],
    rtol: float,
    atol: float,
) -> dict[str, Any]:
    """Run every batch through `module` and the written file; fail unless, for every element,
    |file - torch| <= atol + rtol * |torch| (numpy.allclose). Returns the figures export.json records."""
    worst = dict.fromkeys(output_names, 0.0)
    failed: list[str] = []
    for batch in batches:
        with torch.no_grad():
            expected = [t.numpy() for t in module(batch)]
        got = run(batch)
        for name, e, g in zip(output_names, expected, got, strict=True):
            if e.shape != g.shape:
                raise ExportMismatch(
                    f"output {name!r} has shape {list(g.shape)} in the exported file but {list(e.shape)} in "
                    f"PyTorch for an input of shape {list(batch.shape)}"
                )
            diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
            worst[name] = max(worst[name], float(diff.max(initial=0.0)))
            if not np.all(diff <= atol + rtol * np.abs(e)):
                failed.append(name)
    record = {
        "max_abs_diff": worst,
        "rtol": rtol,
        "atol": atol,
        "batches": [list(b.shape) for b in batches],
    }
    if failed:
        name = failed[0]
        raise ExportMismatch(
            f"the exported model's output {name!r} differs from PyTorch's: max abs difference "
            f"{worst[name]:.3g}, tolerance atol={atol:g} + rtol={rtol:g} x |PyTorch value|. The export is not "
            "trustworthy; if the difference is expected (reduced precision), raise export.atol / export.rtol."
        )
    return record
