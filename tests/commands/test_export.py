"""`cvtrain export`: a classifier, a segmenter, YOLO and YOLOv1 written as ONNX and TorchScript from checkpoints built
in the test (no training needed to check export), their export.json, the written files run back independently,
and the parity check failing when the written file does not compute what PyTorch computes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from omegaconf import DictConfig

from cvtrain.commands import export as export_command
from cvtrain.commands import export_formats
from cvtrain.config import to_plain, to_typed
from cvtrain.config.compose import CONF_DIR, ConfigSource, config_composer
from cvtrain.config.compose import compose_config as compose_config_raw
from cvtrain.engine.checkpoints.restore import group_schemas
from cvtrain.errors import ConfigError
from cvtrain.models.build import build_model
from cvtrain.models.yolo.nms import select_detections
from tests.conftest import FAST, run_cli, write_image

SHAPES = (
    "data=shapes",
    "data.train_per_class=1",
    "data.val_per_class=1",
    "data.train_images=2",
    "data.val_images=3",
)
SCENES = (*SHAPES, "data.scene_size=64")
CLASSIFIER = ("model=small_cnn", *SHAPES)
UNET = ("model=unet", "model.base_width=8", *SCENES)
YOLO = ("model=yolo", "model.size=n", "aug=yolo", *SCENES)
YOLO_V1 = ("model=yolo_v1", "model.image_size=64", "model.width=8", "model.head_channels=16", *SCENES)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"data.cache_dir={tmp_path_factory.mktemp('shapes')}"


def composed(*overrides: str, command: str = "fit", config_dir: Path | None = None) -> DictConfig:
    """The config `cvtrain COMMAND [--config-dir DIR] OVERRIDES` composes."""
    with config_composer(ConfigSource(config_dir=None if config_dir is None else str(config_dir))):
        return compose_config_raw(list(overrides), command)


def make_checkpoint(
    tmp_path: Path, *overrides: str, config_dir: Path | None = None
) -> tuple[Path, torch.nn.Module]:
    """What `cvtrain fit` saves, with freshly initialised weights (BatchNorm statistics made non-trivial)."""
    cfg = to_typed(composed(*overrides, config_dir=config_dir))
    names = ["background", "circle", "square", "triangle", "diamond", "cross"]
    names = names if cfg.model.task == "segmentation" else names[1:]
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=len(names))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {
        "model": model.state_dict(),
        "config": to_plain(cfg),
        "class_names": names,
        "schemas": group_schemas(cfg),
        "epoch": 1,
        "step": 2,
    }
    path = tmp_path / "last.ckpt"
    torch.save(state, path)
    return path, model.eval()


def export(tmp_path: Path, ckpt: Path, *overrides: str, config_dir: Path | None = None) -> dict[str, Any]:
    """`cvtrain export [--config-dir DIR] ckpt=... OVERRIDES` in this process (the group choices as the CLI
    injects them)."""
    raw = composed(f"ckpt={ckpt}", *overrides, command="export", config_dir=config_dir)
    user = [o for o in overrides if o.startswith(("format=", "export.", "inputs=", "data.root"))]
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    export_command.run_export(raw, out, user)
    return json.loads((out / "export.json").read_text())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_classifier_export_describes_its_input_and_runs_like_pytorch(
    fmt: str, cache: str, tmp_path: Path
) -> None:
    ckpt, model = make_checkpoint(tmp_path, *CLASSIFIER, cache)
    record = export(tmp_path, ckpt, *CLASSIFIER, cache, f"format={fmt}")
    assert record["format"] == fmt and record["task"] == "classification" and record["model"] == "small_cnn"
    assert record["class_names"] == ["circle", "square", "triangle", "diamond", "cross"]
    spec = record["input"]
    assert spec["shape"] == ["batch", 3, 32, 32] and spec["image_size"] == 32 and spec["resize_size"] == 37
    assert spec["mean"] == [0.485, 0.456, 0.406] and spec["std"] == [0.229, 0.224, 0.225]
    assert record["outputs"] == [
        {"name": "logits", "shape": ["batch", 5], "meaning": "class logits: softmax gives probabilities"}
    ]
    parity = record["parity"]
    assert parity["inputs"] == "validation data (data=shapes): first 4 images"
    assert parity["batches"] == [[4, 3, 32, 32], [1, 3, 32, 32]] and parity["max_abs_diff"]["logits"] < 1e-4
    # The file, run on its own with a batch size the export never saw, gives the checkpoint's logits.
    images = torch.randn(3, 3, 32, 32)
    got = run_file(tmp_path / "out" / record["file"], images)[0]
    np.testing.assert_allclose(got, model(images).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_a_mean_image_checkpoint_ships_its_mean_image(cache: str, tmp_path: Path) -> None:
    """aug.mean_image=true: export.json points at mean_image.npy, which holds the checkpoint's mean image, and the
    parity images are normalised with it (the task's own input conversion)."""
    overrides = (*CLASSIFIER, cache, "aug.mean_image=true", "format=torchscript")
    ckpt, _ = make_checkpoint(tmp_path, *overrides)
    state = torch.load(ckpt, weights_only=True)
    state["mean_image"] = torch.rand(3, 32, 32)
    torch.save(state, ckpt)
    record = export(tmp_path, ckpt, *overrides)
    spec = record["input"]
    assert spec["mean"] is None and spec["mean_image"] == "mean_image.npy"
    assert "mean_image.npy" in spec["preprocessing"][-1]
    saved = np.load(tmp_path / "out" / "mean_image.npy")
    np.testing.assert_array_equal(saved, state["mean_image"].numpy())
    assert record["parity"]["max_abs_diff"]["logits"] < 1e-4


def run_file(path: Path, images: torch.Tensor) -> list[np.ndarray]:
    if path.suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"images": images.numpy()})
    with pytest.warns(
        FutureWarning, match="deprecated"
    ):  # torch.jit is, by PyTorch; the format is still used
        loaded = torch.jit.load(str(path))
    outputs = loaded(images)
    return [t.detach().numpy() for t in (outputs if isinstance(outputs, tuple) else (outputs,))]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_segmenter_export_takes_any_image_size(fmt: str, cache: str, tmp_path: Path) -> None:
    ckpt, model = make_checkpoint(tmp_path, *UNET, cache)
    record = export(tmp_path, ckpt, *UNET, cache, f"format={fmt}")
    assert (
        record["input"]["shape"] == ["batch", 3, "height", "width"] and record["input"]["image_size"] is None
    )
    assert record["outputs"][0]["shape"] == ["batch", 6, "height", "width"]
    assert record["parity"]["batches"] == [[3, 3, 64, 64], [1, 3, 64, 64]]
    images = torch.randn(2, 3, 40, 72)  # not the size it was traced with
    with torch.no_grad():
        expected = model(images)["out"].numpy()
    np.testing.assert_allclose(
        run_file(tmp_path / "out" / record["file"], images)[0], expected, atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_yolo_export_gives_candidates_whose_nms_is_the_models_detections(
    fmt: str, cache: str, tmp_path: Path
) -> None:
    ckpt, model = make_checkpoint(tmp_path, *YOLO, "model.conf_threshold=0.005", cache)
    record = export(tmp_path, ckpt, *YOLO, "model.conf_threshold=0.005", cache, f"format={fmt}")
    assert [o["name"] for o in record["outputs"]] == ["boxes", "scores"]
    assert record["outputs"][1]["shape"] == ["batch", "anchors", 5]
    post = record["postprocess"]
    assert post["decoded"] and not post["nms_applied"] and post["conf_threshold"] == 0.005
    assert record["input"]["image_size"] == 64 and record["input"]["mean"] == [0.0, 0.0, 0.0]
    images = torch.rand(2, 3, 64, 96)  # letterboxed, padded to multiples of 32
    boxes, scores = run_file(tmp_path / "out" / record["file"], images)
    with torch.no_grad():
        expected = model(list(images))
    for image_boxes, image_scores, want in zip(boxes, scores, expected, strict=True):
        got = select_detections(
            torch.from_numpy(image_boxes),
            torch.from_numpy(image_scores),
            image_size=(64, 96),
            conf_threshold=post["conf_threshold"],
            iou_threshold=post["iou_threshold"],
            max_det=post["max_det"],
        )
        assert len(want["boxes"]) > 0
        torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-3, rtol=1e-4)
        assert torch.equal(got["labels"], want["labels"])


def test_yolo_export_letterboxes_for_a_copy_of_aug_yolo_in_a_users_config_dir(
    cache: str, tmp_path: Path
) -> None:
    """The input spec follows aug.letterbox, not the preset's name: aug=yolo copied to myconf/aug/myaug.yaml."""
    (tmp_path / "myconf" / "aug").mkdir(parents=True)
    yolo_yaml = (Path(CONF_DIR) / "aug" / "yolo.yaml").read_text()
    (tmp_path / "myconf" / "aug" / "myaug.yaml").write_text(yolo_yaml.replace("name: yolo", "name: myaug"))
    mine = [*(o for o in YOLO if o != "aug=yolo"), "aug=myaug", cache]
    ckpt, _ = make_checkpoint(tmp_path, *mine, config_dir=tmp_path / "myconf")
    record = export(tmp_path, ckpt, *mine, "format=torchscript", config_dir=tmp_path / "myconf")
    assert record["input"]["image_size"] == 64 and record["input"]["preprocessing"][0].startswith("letterbox")


def test_a_yolo_checkpoint_written_before_aug_letterbox_exports_its_letterbox(
    cache: str, tmp_path: Path
) -> None:
    """Its stored aug config has no letterbox field: aug=yolo's YAML gives it."""
    ckpt, _ = make_checkpoint(tmp_path, *YOLO, cache)
    state = torch.load(ckpt, weights_only=True)
    del state["config"]["aug"]["letterbox"]
    torch.save(state, ckpt)
    record = export(tmp_path, ckpt, *YOLO, cache, "format=torchscript")
    assert record["input"]["image_size"] == 64 and record["input"]["preprocessing"][0].startswith("letterbox")


def test_yolo_v1_export_is_fixed_to_its_image_size(cache: str, tmp_path: Path) -> None:
    ckpt, _ = make_checkpoint(tmp_path, *YOLO_V1, cache)
    record = export(tmp_path, ckpt, *YOLO_V1, cache, "format=onnx")
    assert record["input"]["shape"] == ["batch", 3, 64, 64]
    assert record["outputs"][0]["shape"] == ["batch", "grid_boxes", 4]
    assert record["parity"]["max_abs_diff"]["scores"] < 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_file_that_differs_from_pytorch_fails_the_export(
    fmt: str, cache: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weights change after the file is written: the parity check must see it, and nothing is left."""
    real_write = export_formats.write

    def write_then_perturb(*args: Any, **kwargs: Any) -> export_formats.Written:
        written = real_write(*args, **kwargs)
        module = args[1]
        with torch.no_grad():
            next(module.parameters()).add_(0.05)
        return written

    monkeypatch.setattr(export_formats, "write", write_then_perturb)
    ckpt, _ = make_checkpoint(tmp_path, *CLASSIFIER, cache)
    with pytest.raises(export_formats.ExportMismatch, match=r"max abs difference .* tolerance atol=0.0001"):
        export(tmp_path, ckpt, *CLASSIFIER, cache, f"format={fmt}")
    assert not list((tmp_path / "out").iterdir())


def test_inputs_images_win_and_unreachable_data_falls_back_to_random_pixels(tmp_path: Path) -> None:
    folder = ("model=small_cnn", "data=imagefolder", f"data.root={tmp_path / 'absent'}")
    ckpt, _ = make_checkpoint(tmp_path, *folder)
    record = export(tmp_path, ckpt, *folder, "format=torchscript")
    assert record["parity"]["inputs"].startswith("random pixels") and record["parity"]["batches"][0][0] == 4
    pics = tmp_path / "pics"
    for name in ("a.png", "b.jpg"):
        write_image(pics / name, size=(50, 40))
    record = export(tmp_path, ckpt, *folder, "format=torchscript", f"inputs={pics}")
    assert record["parity"]["inputs"] == f"inputs={pics}: 2 images"


def test_unsupported_models_and_formats_are_refused(tmp_path: Path) -> None:
    ckpt, _ = make_checkpoint(tmp_path, *CLASSIFIER)
    with pytest.raises(
        ConfigError, match="format='tflite' is not an export format; choose one of onnx, torchscript"
    ):
        export(tmp_path, ckpt, *CLASSIFIER, "format=tflite")


def test_cli_export(cache: str, tmp_path: Path) -> None:
    help_text = " ".join(run_cli("--help", cwd=tmp_path).stdout.split())
    assert "export write a checkpoint's model as ONNX or TorchScript" in help_text
    ckpt, _ = make_checkpoint(tmp_path, *CLASSIFIER, cache)
    proc = run_cli(
        "export",
        f"ckpt={ckpt}",
        "format=torchscript",
        *FAST[:1],
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    record = json.loads((tmp_path / "run" / "export.json").read_text())
    assert (tmp_path / "run" / "model.torchscript.pt").is_file() and record["model"] == "small_cnn"
    assert "│ logits │ [batch, 5] │" in proc.stdout  # the shape as written, brackets included
