"""Segmentation end to end: the CLI on the real VOC sample (fit -> eval round trip, saved masks, predict), and a
2-step fit + evaluation of every segmentation model in-process (cheaper than a subprocess per model)."""

import json
from pathlib import Path

import pytest
from PIL import Image

from cvtrain.commands.evaluate import run_eval
from cvtrain.commands.fit import run_fit
from cvtrain.config.compose import CONF_DIR
from cvtrain.data.decoding.palette import read_index_png
from tests.conftest import (
    FAST,
    VOC_SEG_SAMPLE_ID,
    compose_config,
    compose_raw,
    read_results,
    run_cli,
    voc_seg_sample,
)

TINY_FCN8S = ("model=fcn8s", "model.width=4", "model.fc_width=8", "model.fc_kernel=3")
METRICS = ("miou", "pixel_acc", "mean_class_acc", "fw_iou")


@pytest.fixture(scope="module")
def voc_devkit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_seg_sample(tmp_path_factory.mktemp("voc"))


@pytest.fixture(scope="module")
def trained(voc_devkit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("fit")
    run_cli(
        "fit",
        *TINY_FCN8S,
        "data=voc_seg",
        f"data.root={voc_devkit}",
        "data.image_size=64",
        "data.batch_size=2",
        "aug=segmentation",
        "sched=poly",
        "trainer.epochs=2",
        *FAST,
        f"hydra.run.dir={run_dir}",
        cwd=run_dir,
    )
    return run_dir


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_fit_then_eval_reproduces_the_metrics_and_saves_masks_at_full_size(
    trained: Path, voc_devkit: Path, tmp_path: Path
) -> None:
    fit = read_results(trained)
    assert fit["monitor"] == "miou" and fit["steps"] == 2 and fit["val_images"] == 1
    for name in ("curves", "confusion_matrix", "predictions"):
        assert (trained / "plots" / f"{name}.png").is_file(), name
    run_cli(
        "eval",
        f"ckpt={trained}/checkpoints/last.ckpt",
        "eval.save_predictions=true",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    again = read_results(tmp_path)
    for key in METRICS:
        assert again[key] == fit[key], key
    mask_path = tmp_path / "predictions" / f"{VOC_SEG_SAMPLE_ID}.png"
    jpeg = voc_devkit / "VOC2012" / "JPEGImages" / f"{VOC_SEG_SAMPLE_ID}.jpg"
    width, height = image_size(jpeg)
    with Image.open(mask_path) as png:
        assert png.mode == "P" and png.size == (width, height)
    assert read_index_png(mask_path).max() <= 20
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert [r["mask"] for r in records] == [f"predictions/{VOC_SEG_SAMPLE_ID}.png"]


def test_predict_writes_a_colour_mask_and_an_overlay_per_image(
    trained: Path, voc_devkit: Path, tmp_path: Path
) -> None:
    jpegs = voc_devkit / "VOC2012" / "JPEGImages"
    proc = run_cli(
        "predict",
        f"ckpt={trained}/checkpoints/last.ckpt",
        f"inputs={jpegs}",
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
    )
    records = json.loads((tmp_path / "predictions.json").read_text())
    assert len(records) == 2
    for record in records:
        size = image_size(Path(record["path"]))
        assert image_size(tmp_path / record["mask"]) == size
        width, height = image_size(tmp_path / record["overlay"])
        painted = len(record["class_fractions"].keys() - {"background"})
        assert width == size[0] and (height > size[1] if painted else height == size[1])  # + a legend strip
        assert Path(record["mask"]).stem == Path(record["path"]).stem
        assert sum(record["class_fractions"].values()) == pytest.approx(1.0, abs=1e-4)
        assert Path(record["path"]).name in proc.stdout
    assert "%" in proc.stdout  # the class pixel fractions table


# ----------------------------------------------------------------------------------------- every model
SMALL_OPTIONS = {
    "fcn": ("model.aux_loss=true",),  # the auxiliary loss path
    "deeplabv3": ("model.backbone=mobilenet_v3_large",),  # fcn covers the dilated ResNet-50 path
    "lraspp": (),
    "fcn8s": ("model.width=4", "model.fc_width=8", "model.fc_kernel=3", "model.upsample=max_unpool"),
    "unet": ("model.base_width=4", "model.depth=2", "model.class_weights=[0.5,1,1,1,1,1]"),
}


@pytest.fixture(scope="module")
def shapes_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes")


def test_every_segmentation_model_is_covered() -> None:
    models = [f.stem for f in Path(CONF_DIR, "model").glob("*.yaml")]
    assert set(SMALL_OPTIONS) == {
        m for m in models if compose_config(f"model={m}").model.task == "segmentation"
    }


@pytest.mark.parametrize("name", sorted(SMALL_OPTIONS))
def test_every_model_trains_two_steps_and_its_checkpoint_evaluates_identically(
    name: str, shapes_cache: Path, tmp_path: Path
) -> None:
    cfg = compose_raw(
        f"model={name}",
        *SMALL_OPTIONS[name],
        "data=shapes",
        f"data.cache_dir={shapes_cache}",
        "data.scene_size=40",
        "data.train_images=4",
        "data.val_images=2",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "aug=segmentation",
        "sched=poly",
        "trainer.device=cpu",
        "trainer.epochs=1",
        "trainer.max_steps=2",
        "logger=[csv]",
    )
    (tmp_path / "fit").mkdir()
    (tmp_path / "eval").mkdir()
    fit = run_fit(cfg, tmp_path / "fit", overrides=[])
    assert fit["steps"] == 2 and fit["monitor"] == "miou" and 0.0 <= fit["miou"] <= 1.0
    eval_cfg = compose_raw("command=eval", f"ckpt={tmp_path / 'fit' / 'checkpoints' / 'last.ckpt'}")
    again = run_eval(eval_cfg, tmp_path / "eval", overrides=[])
    assert again["model"] == name
    for key in METRICS:
        assert again[key] == fit[key], key


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["shapes_unet", "shapes_fcn8s"])
def test_segmenter_learns_the_shapes_on_the_cpu(experiment: str, tmp_path: Path) -> None:
    """The README's CPU recipes (conf/experiment/shapes_*.yaml): well above the ~0.15 mIoU of background only."""
    run_cli(
        "fit",
        f"+experiment={experiment}",
        "trainer.device=cpu",
        "logger.console.progress=false",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        timeout=1800,
    )
    assert read_results(tmp_path / "run")["miou"] > 0.5  # measured: unet 0.69, fcn8s 0.78
