"""`cvtrain export ckpt=PATH format=onnx|torchscript`: write a checkpoint's model in a deployment format, with an
`export.json` that says what the model expects and returns, after checking that the written file computes what
PyTorch computes.

The parity check runs real images when it can: the `inputs=` images when given (the user's choice wins), else the
first `export.samples` images of the checkpoint's validation data, each through the task's evaluation transform;
when neither is reachable it runs random pixels and export.json says so. Every image is prepared exactly as
export.json's `input.preprocessing` describes, then run through PyTorch and through the file (onnxruntime on the
CPU, or torch.jit.load); an output element off by more than `export.atol + export.rtol x |PyTorch value|` fails
the export, and the written file is removed. What each model exports is in cvtrain/models/exportable.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from rich.table import Table

from cvtrain.commands import export_formats
from cvtrain.composition import task_of
from cvtrain.config import Config
from cvtrain.contracts.batch import BadSample
from cvtrain.data.inputs import InputImages
from cvtrain.data.splits import build_data
from cvtrain.data.transforms.pipelines import eval_resize_size, eval_transform
from cvtrain.engine.checkpoints.restore import restore
from cvtrain.engine.reporting import log, show, write_json
from cvtrain.errors import ConfigError, CvtrainError
from cvtrain.models.build import build_model
from cvtrain.models.exportable import Exportable, YOLOCandidates, YOLOv1Candidates, exportable
from cvtrain.models.weights import weights_replaced_by_checkpoint
from cvtrain.models.yolo.inputs import PAD_VALUE, pad_images

RANDOM_NOTE = (
    "random pixels: neither inputs= images nor the checkpoint's validation data were reachable; outputs on random "
    "pixels can agree where real images would not, so check the model on real images too"
)


def run_export(raw_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    fmt = export_formats.check_format(str(raw_cfg.format))
    restored = restore(raw_cfg, overrides)
    cfg, class_names, mean_image = restored.cfg, restored.class_names, restored.mean_image
    with weights_replaced_by_checkpoint():
        model = build_model(cfg.model, num_classes=len(class_names))
    restored.load_weights(model)
    exp = exportable(model, task=cfg.model.task, name=cfg.model.name, num_classes=len(class_names))
    spec = input_spec(cfg, exp)
    if mean_image is not None:  # AlexNet's mean image replaces the per-channel mean: ship it beside the model
        np.save(run_dir / MEAN_IMAGE_FILE, mean_image.float().numpy())
        spec = with_mean_image(spec, list(cfg.aug.std), tuple(mean_image.shape))
    # The task's own conversion of uint8 pixels to the model's input, as in fit / eval / predict.
    task = task_of(cfg, class_names, mean_image)
    images, source = parity_images(cfg)
    if not images:
        images, source = random_images(cfg, spec), RANDOM_NOTE
    batches = model_batches([prepare(image, exp, task.inputs) for image in images])
    first = batches[0]
    example = (
        first[:2] if len(first) > 1 else first.repeat(2, 1, 1, 1)
    )  # batch 2: the exporter keeps it dynamic
    written = export_formats.write(
        fmt,
        exp.module,
        example,
        run_dir,
        output_names=exp.output_names,
        dynamic_size=exp.dynamic_size,
        opset=cfg.export.opset,
    )
    try:
        parity = export_formats.compare(
            exp.module,
            written.run,
            [*batches, first[:1]],  # one single image too: the batch axis really is dynamic
            output_names=exp.output_names,
            rtol=cfg.export.rtol,
            atol=cfg.export.atol,
        )
    except CvtrainError:
        for path in run_dir.glob(f"{written.path.name}*"):  # the file and any external weights
            path.unlink()
        raise
    record = {
        "format": fmt,
        "file": written.path.name,
        **written.details,
        "ckpt": str(cfg.ckpt),
        "epoch": restored.state.get("epoch"),
        "step": restored.state.get("step"),
        "model": cfg.model.name,
        "task": cfg.model.task,
        "num_classes": len(class_names),
        "class_names": class_names,
        "input": spec,
        "outputs": exp.outputs,
        **({"postprocess": exp.postprocess} if exp.postprocess else {}),
        "parity": {"inputs": source, **parity},
    }
    write_json(run_dir / "export.json", record)
    show(_summary(record))
    log.info("exported %s to %s (export.json beside it)", cfg.model.name, written.path)
    return record


def input_spec(cfg: Config, exp: Exportable) -> dict[str, Any]:
    """What the exported model expects: shape, the preprocessing steps, and the numbers they use."""
    aug = cfg.aug
    scale = "RGB, float32, divided by 255"
    if isinstance(exp.module, YOLOCandidates):
        size = int(aug.image_size) if aug.letterbox else None
        resize = (
            f"letterbox: resize so that the longer side is {size} px, keeping the aspect ratio (bilinear, "
            "antialiased); boxes come back in these resized pixels: divide by the resize factor for the original "
            "image's"
            if size
            else "no resize (the checkpoint trained without aug.letterbox)"
        )
        pad = (
            f"pad at the bottom/right with {round(PAD_VALUE * 255)}/255 to multiples of {exp.size_multiple} in "
            f"height and width (a {size or 'S'}x{size or 'S'} square works)"
        )
        return _spec(
            ["batch", 3, "height", "width"], size, None, None, [resize, f"{scale}; no mean/std", pad]
        )
    if isinstance(exp.module, YOLOv1Candidates):
        size = exp.module.model.image_size
        steps = [
            f"stretch-resize to {size}x{size}, ignoring the aspect ratio (bilinear, antialiased)",
            f"{scale}; no mean/std (the model normalises with the ImageNet mean/std inside)",
        ]
        return _spec(["batch", 3, size, size], size, None, None, steps)
    normalise = f"subtract mean {list(aug.mean)} and divide by std {list(aug.std)}, per channel"
    if cfg.model.task == "segmentation":
        steps = [
            "no resize: the model runs at the image's own resolution (any height and width)",
            scale,
            normalise,
        ]
        return _spec(["batch", 3, "height", "width"], None, None, aug, steps)
    size, resize = int(aug.image_size), eval_resize_size(aug)
    steps = [f"resize the shorter side to {resize} px (bilinear, antialiased)", f"centre crop {size}x{size}"]
    return _spec(["batch", 3, size, size], size, resize, aug, [*steps, scale, normalise])


MEAN_IMAGE_FILE = "mean_image.npy"


def with_mean_image(spec: dict[str, Any], std: list[float], shape: tuple[int, ...]) -> dict[str, Any]:
    """`aug.mean_image=true`: the per-pixel mean image (saved as MEAN_IMAGE_FILE) replaces the per-channel mean."""
    steps = [*spec["preprocessing"][:-1]]
    steps.append(
        f"subtract the mean image {MEAN_IMAGE_FILE} (float32 {list(shape)}, RGB in [0, 1], numpy.load) pixel by "
        f"pixel, then divide by std {std}, per channel"
    )
    return {**spec, "mean": None, "mean_image": MEAN_IMAGE_FILE, "preprocessing": steps}


def _spec(
    shape: list[Any], size: int | None, resize: int | None, aug: Any, steps: list[str]
) -> dict[str, Any]:
    """export.json's `input`; `aug` None: no mean/std (mean 0, std 1), so (pixel / 255 - mean) / std always holds."""
    return {
        "name": export_formats.INPUT_NAME,
        "dtype": "float32",
        "layout": "NCHW, RGB",
        "shape": shape,
        "image_size": size,
        "resize_size": resize,
        "mean": list(aug.mean) if aug is not None else [0.0] * 3,
        "std": list(aug.std) if aug is not None else [1.0] * 3,
        "preprocessing": steps,
    }


def parity_images(cfg: Config) -> tuple[list[torch.Tensor], str]:
    """Up to `export.samples` real images through the task's evaluation transform, and where they came from."""
    count, task = cfg.export.samples, cfg.model.task
    if count < 1:
        raise ConfigError(f"export.samples={count}: the parity check needs at least 1 image")
    if cfg.inputs is not None:
        images = _first(InputImages(cfg.inputs, transform=eval_transform(task, cfg.aug)), count)
        return images, f"inputs={cfg.inputs}: {len(images)} images"
    try:
        val = build_data(cfg.data, aug=cfg.aug, task=task, need_train=False).val
    except (CvtrainError, OSError) as e:
        log.warning(
            "the validation data is not reachable (%s); the parity check runs random pixels",
            str(e).splitlines()[0],
        )
        return [], ""
    images = _first(val, count)
    return images, f"validation data (data={cfg.data.format}): first {len(images)} images"


def _first(dataset: Any, count: int) -> list[torch.Tensor]:
    images = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if not isinstance(sample, BadSample):
            images.append(torch.as_tensor(sample[0]))
        if len(images) == count:
            break
    return images


def random_images(cfg: Config, spec: dict[str, Any]) -> list[torch.Tensor]:
    """Random uint8 pictures at the input size (the training crop where any size goes), prepared like real ones."""
    size = spec["image_size"] or int(cfg.aug.image_size)
    generator = torch.Generator().manual_seed(cfg.trainer.seed)
    return [
        torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
        for _ in range(cfg.export.samples)
    ]


def prepare(
    image: torch.Tensor, exp: Exportable, inputs: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """An image as the exported model takes it: the evaluation transform's uint8 output through the task's own
    scaling and normalisation (`inputs`, what `spec` describes), then the model-specific step (YOLO padding,
    YOLOv1 stretch)."""
    image = inputs(image)
    if isinstance(exp.module, YOLOCandidates):
        return pad_images([image], multiple=exp.size_multiple)[0][0]
    if isinstance(exp.module, YOLOv1Candidates):
        return exp.module.model.resize([image])[0]
    return image


def model_batches(images: list[torch.Tensor]) -> list[torch.Tensor]:
    """Equal-sized images batched together (segmentation and YOLO inputs keep their own sizes)."""
    by_size: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
    for image in images:
        by_size[tuple(image.shape)].append(image)
    return [torch.stack(group) for group in by_size.values()]


def _summary(record: dict[str, Any]) -> Table:
    parity = record["parity"]
    table = Table(title=f"{record['model']} -> {record['file']}: parity with PyTorch", header_style="bold")
    for column in ("output", "shape", "max abs diff", "tolerance"):
        table.add_column(column)
    for output in record["outputs"]:
        table.add_row(
            output["name"],
            f"[{', '.join(str(d) for d in output['shape'])}]",
            f"{parity['max_abs_diff'][output['name']]:.3g}",
            f"atol {parity['atol']:g} + rtol {parity['rtol']:g} x |value|",
        )
    table.caption = f"inputs: {parity['inputs']}"
    return table
