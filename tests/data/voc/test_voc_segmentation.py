"""VOC 2012 segmentation loader: tiny VOCdevkits written in the real layout under tmp_path."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from cvtrain.contracts.batch import BadSample
from cvtrain.data.annotations.class_names import VOC_SEG_CLASSES
from cvtrain.data.decoding.palette import write_index_png
from cvtrain.data.voc.segmentation import VOCSegmentation
from cvtrain.errors import ConfigError, DataError
from tests.conftest import fixture_dir


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _mask(height: int, width: int, label: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[1 : height - 1, 1 : width // 2] = label
    mask[0, :] = 255  # a void row, like VOC's object borders
    return mask


def make_voc(root: Path, splits: dict[str, list[str]], size: tuple[int, int] = (6, 8)) -> Path:
    """A VOCdevkit with one image (PNG bytes, lossless) and one palette mask per id; returns the devkit."""
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    all_ids = sorted({i for ids in splits.values() for i in ids})
    for n, image_id in enumerate(all_ids):
        # PNG data behind the .jpg name keeps pixel values exact; read_image sniffs the real format.
        Image.fromarray(_image(*size, seed=n)).save(voc / "JPEGImages" / f"{image_id}.jpg", format="PNG")
        write_index_png(voc / "SegmentationClass" / f"{image_id}.png", _mask(*size, label=1 + n % 20))
    for split, ids in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root / "VOCdevkit"


def make_sbd_aug(root: Path, ids: list[str], size: tuple[int, int] = (6, 8), label: int = 7) -> Path:
    aug = root / "SBD" / "SegmentationClassAug"
    aug.mkdir(parents=True)
    for image_id in ids:
        Image.fromarray(np.full(size, label, dtype=np.uint8)).save(aug / f"{image_id}.png")  # grayscale "L"
    return root / "SBD"


SPLITS = {"train": ["2008_000001", "2008_000002"], "val": ["2008_000003"]}


def test_sample_types_values_and_meta(tmp_path):
    devkit = make_voc(tmp_path, {**SPLITS, "trainval": SPLITS["train"] + SPLITS["val"]})
    dataset = VOCSegmentation(root=devkit, split="train")
    assert len(dataset) == 2 and dataset.image_ids == SPLITS["train"]
    assert dataset.num_classes == 21 and dataset.class_names == list(VOC_SEG_CLASSES)
    image, mask, meta = dataset[1]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape == (3, 6, 8)
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.uint8 and mask.shape == (6, 8)
    assert torch.equal(image.permute(1, 2, 0), torch.from_numpy(_image(6, 8, seed=1)))
    assert torch.equal(mask, torch.from_numpy(_mask(6, 8, label=2)))
    assert set(mask.unique().tolist()) == {0, 2, 255}
    voc = devkit / "VOC2012"
    assert meta == {
        "image_id": "2008_000002",
        "path": str(voc / "JPEGImages" / "2008_000002.jpg"),
        "orig_size": (6, 8),
    }
    assert len(VOCSegmentation(root=devkit, split="trainval")) == 3
    assert len(VOCSegmentation(root=voc, split="val")) == 1  # the VOC2012 folder itself works as root too


def test_joint_transforms_move_mask_with_image(tmp_path):
    devkit = make_voc(tmp_path, SPLITS)
    plain = VOCSegmentation(root=devkit, split="train")
    flipped = VOCSegmentation(root=devkit, split="train", transforms=v2.RandomHorizontalFlip(p=1.0))
    image, mask, meta = flipped[0]
    image0, mask0, meta0 = plain[0]
    assert torch.equal(image, image0.flip(-1)) and torch.equal(mask, mask0.flip(-1))
    assert isinstance(mask, tv_tensors.Mask) and meta["orig_size"] == meta0["orig_size"]


def test_missing_split_file_names_file_and_available_splits(tmp_path):
    devkit = make_voc(tmp_path, SPLITS)
    with pytest.raises(DataError, match=r"trainval\.txt.*\['train', 'val'\]"):
        VOCSegmentation(root=devkit, split="trainval")


def test_not_a_devkit(tmp_path):
    with pytest.raises(DataError, match="not a VOCdevkit"):
        VOCSegmentation(root=tmp_path, split="train")


def test_missing_mask_fails_at_construction(tmp_path):
    devkit = make_voc(tmp_path, SPLITS)
    (devkit / "VOC2012" / "SegmentationClass" / "2008_000002.png").unlink()
    with pytest.raises(DataError, match=r"1 files.*2008_000002\.png"):
        VOCSegmentation(root=devkit, split="train")


def test_bad_files_become_bad_samples_naming_them(tmp_path):
    devkit = make_voc(tmp_path, {"train": ["a", "b", "c", "d"], "val": ["e"]})
    voc = devkit / "VOC2012"
    (voc / "JPEGImages" / "a.jpg").write_bytes(b"")  # unreadable image
    (voc / "SegmentationClass" / "b.png").write_bytes(b"garbage")  # unreadable mask
    write_index_png(voc / "SegmentationClass" / "c.png", np.zeros((5, 8), dtype=np.uint8))  # wrong size
    write_index_png(voc / "SegmentationClass" / "d.png", np.full((6, 8), 21, dtype=np.uint8))  # no class 21
    dataset = VOCSegmentation(root=devkit, split="train")
    bad = [dataset[i] for i in range(4)]
    assert all(isinstance(s, BadSample) for s in bad)
    assert bad[0].path.endswith("a.jpg") and "empty" in bad[0].reason
    assert bad[1].path.endswith("b.png") and "b.png" in bad[1].reason
    assert (
        "c.png" in bad[2].reason
        and "c.jpg" in bad[2].reason
        and "5x8" in bad[2].reason
        and "6x8" in bad[2].reason
    )
    assert bad[3].path.endswith("d.png") and "class index 21" in bad[3].reason


def test_custom_class_names(tmp_path):
    devkit = make_voc(tmp_path, SPLITS)
    dataset = VOCSegmentation(root=devkit, split="train", class_names=["background", "x"])
    assert dataset.num_classes == 2
    assert isinstance(dataset[0], tuple)  # its mask uses label 1: fits
    assert isinstance(dataset[1], BadSample) and "class index 2" in dataset[1].reason  # label 2 does not
    with pytest.raises(ConfigError, match="background"):
        VOCSegmentation(root=devkit, split="train", class_names=["x", "background"])


def test_sbd_png_extends_train_without_val_leakage(tmp_path):
    devkit = make_voc(tmp_path, SPLITS)
    voc = devkit / "VOC2012"
    extra = ["2009_000010", "2009_000011"]
    for n, image_id in enumerate(extra):  # SBD images live in VOC2012/JPEGImages
        Image.fromarray(_image(6, 8, seed=50 + n)).save(voc / "JPEGImages" / f"{image_id}.jpg", format="PNG")
    # SBD also covers a VOC val image (must be excluded) and a VOC train image (VOC's own mask is kept).
    sbd = make_sbd_aug(tmp_path, [*extra, "2008_000003", "2008_000001"])
    train = VOCSegmentation(root=devkit, split="train", sbd_root=sbd)
    assert train.image_ids == ["2008_000001", "2008_000002", *extra]
    assert "2008_000003" not in train.image_ids
    _, mask, meta = train[2]
    assert meta["image_id"] == "2009_000010" and set(mask.unique().tolist()) == {7}
    assert set(train[0][1].unique().tolist()) == {0, 1, 255}  # VOC's mask, not SBD's
    # Evaluation never sees SBD, even when the same config passes sbd_root; the Aug folder itself works too.
    assert VOCSegmentation(root=devkit, split="val", sbd_root=sbd).image_ids == ["2008_000003"]
    assert (
        VOCSegmentation(root=devkit, split="train", sbd_root=sbd / "SegmentationClassAug").image_ids
        == train.image_ids
    )


def test_sbd_needs_val_list_and_masks(tmp_path):
    devkit = make_voc(tmp_path, {"train": ["a"]})
    sbd = make_sbd_aug(tmp_path, ["b"])
    with pytest.raises(DataError, match=r"val\.txt"):  # without val.txt leakage cannot be ruled out
        VOCSegmentation(root=devkit, split="train", sbd_root=sbd)
    empty = tmp_path / "empty_sbd"
    empty.mkdir()
    (devkit / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    with pytest.raises(DataError, match="holds no SBD masks"):
        VOCSegmentation(root=devkit, split="train", sbd_root=empty)


def _make_sbd_mat_tree(tmp_path: Path) -> tuple[Path, Path]:
    devkit = make_voc(tmp_path, SPLITS)
    dataset_dir = tmp_path / "benchmark_RELEASE" / "dataset"
    (dataset_dir / "cls").mkdir(parents=True)
    (dataset_dir / "img").mkdir()
    (dataset_dir / "cls" / "2010_000005.mat").write_bytes(b"MATLAB 5.0 MAT-file placeholder")
    Image.fromarray(_image(6, 8, seed=9)).save(dataset_dir / "img" / "2010_000005.jpg", format="PNG")
    return devkit, tmp_path / "benchmark_RELEASE"


def test_sbd_mat_without_scipy_says_what_to_do(tmp_path, monkeypatch):
    devkit, sbd = _make_sbd_mat_tree(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes `import scipy.io` fail as if not installed
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ConfigError, match=r"pip install scipy.*SegmentationClassAug"):
        VOCSegmentation(root=devkit, split="train", sbd_root=sbd)


def test_sbd_mat_read_with_scipy(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    devkit, sbd = _make_sbd_mat_tree(tmp_path)
    segmentation = np.full((6, 8), 15, dtype=np.uint8)
    gtcls = {"Segmentation": segmentation, "CategoriesPresent": np.array([15], dtype=np.uint8)}
    scipy_io.savemat(sbd / "dataset" / "cls" / "2010_000005.mat", {"GTcls": gtcls})
    dataset = VOCSegmentation(root=devkit, split="train", sbd_root=sbd)
    image, mask, meta = dataset[2]
    assert meta["path"].endswith("img/2010_000005.jpg") and set(mask.unique().tolist()) == {15}


def test_real_voc_fixture(tmp_path):
    source = fixture_dir("voc-sample") / "VOCdevkit"
    devkit = tmp_path / "VOCdevkit"
    shutil.copytree(source, devkit)
    split_dir = devkit / "VOC2012" / "ImageSets" / "Segmentation"
    split_dir.mkdir(parents=True)
    (split_dir / "val.txt").write_text("2007_000063\n")
    image, mask, meta = VOCSegmentation(root=devkit, split="val")[0]
    assert image.shape == (3, 375, 500) and mask.shape == (375, 500)
    assert set(mask.unique().tolist()) == {0, 9, 12, 255}  # chair, dog, void border
    assert meta["orig_size"] == (375, 500) and meta["image_id"] == "2007_000063"
