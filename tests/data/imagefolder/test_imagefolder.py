from pathlib import Path

import pytest
import torch
from torchvision.datasets import ImageFolder

from cvtrain.contracts.batch import BadSample
from cvtrain.data.imagefolder.classification import ImageFolderDataset, find_classes, read_synset_mapping
from cvtrain.data.splits import build_data
from cvtrain.errors import DataError
from tests.conftest import compose_config, fixture_dir, make_imagefolder, write_image


def test_class_indices_follow_sorted_folders_like_torchvision(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path, classes=("n03", "n01", "n02"))
    classes = find_classes(root / "train")
    ours = ImageFolderDataset(split_dir=root / "train", classes=classes)
    reference = ImageFolder(str(root / "train"))
    assert classes == reference.classes == ["n01", "n02", "n03"]
    assert [(Path(p).name, y) for p, y in ours.samples] == [(Path(p).name, y) for p, y in reference.samples]


def test_awkward_files_load_and_strays_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_image(root / "a" / "gray.JPEG", mode="L", fmt="JPEG")
    write_image(root / "a" / "png_inside.JPEG", fmt="PNG")
    write_image(root / "b" / "UPPER.JPG", fmt="JPEG")
    write_image(root / "b" / "cmyk.jpeg", mode="CMYK", fmt="JPEG")
    for stray in ("a/.DS_Store", "a/Thumbs.db", "b/readme.txt"):
        (root / stray).write_text("x")
    ds = ImageFolderDataset(split_dir=root, classes=find_classes(root))
    assert len(ds) == 4
    for i in range(len(ds)):
        image, label, meta = ds[i]
        assert image.shape[0] == 3 and image.dtype == torch.uint8
        assert label == (0 if "/a/" in meta["path"] else 1)


def test_unreadable_image_becomes_a_bad_sample_not_an_exception(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_image(root / "a" / "ok.jpg", fmt="JPEG")
    (root / "a" / "zero.jpg").write_bytes(b"")
    ds = ImageFolderDataset(split_dir=root, classes=["a"])
    bad = [ds[i] for i in range(len(ds)) if isinstance(ds[i], BadSample)]
    assert len(bad) == 1 and bad[0].path.endswith("zero.jpg") and "0 bytes" in bad[0].reason


def test_missing_split_and_empty_tree_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_classes(tmp_path / "nope")
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        ImageFolderDataset(split_dir=tmp_path / "train", classes=["a"])


def test_synset_mapping_gives_readable_names(tmp_path: Path) -> None:
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n01440764 tench, Tinca tinca\nn02102040 English springer, English springer spaniel\n")
    assert read_synset_mapping(mapping, ["n01440764", "n02102040", "n09999999"]) == [
        "tench",
        "English springer",
        "n09999999",
    ]


def test_real_imagenet_sample_loads() -> None:
    root = fixture_dir("imagenet-mini")
    classes = find_classes(root / "train")
    for split in ("train", "val"):
        ds = ImageFolderDataset(split_dir=root / split, classes=classes)
        image, label, _ = ds[0]
        assert image.shape[0] == 3 and 0 <= label < 3


def build(root: Path, *overrides: str):
    cfg = compose_config("data=imagefolder", f"data.root={root}", *overrides)
    return build_data(cfg.data, aug=cfg.aug, task="classification", need_train=True)


EMPTY_CLASS_FIX = (
    "add its images or remove the folder, or set data.allow_empty_classes=true to keep it as a class without "
    "training images (e.g. so class indices match another split's)"
)


@pytest.mark.parametrize("stray", [None, "notes.txt"], ids=["empty", "only a text file"])
def test_a_training_class_folder_without_images_is_refused_naming_it(
    tmp_path: Path, stray: str | None
) -> None:
    root = make_imagefolder(tmp_path, classes=("n01", "n02", "n03"), per_class=2)
    (root / "train" / "n04").mkdir()
    if stray:
        (root / "train" / "n04" / stray).write_text("to label")
    what = "class folder 'n04' holds no image file (.jpg, .jpeg, .png, ... in any case)"
    what += ": only 1 other file(s), e.g. 'notes.txt'" if stray else ""
    with pytest.raises(DataError) as info:
        build(root)
    assert str(info.value) == f"{root / 'train' / 'n04'}: {what}; {EMPTY_CLASS_FIX}"


def test_an_allowed_empty_class_folder_stays_a_class_with_a_warning(tmp_path: Path, caplog) -> None:
    root = make_imagefolder(tmp_path, classes=("n01", "n03"), per_class=2)
    (root / "train" / "n02").mkdir()
    write_image(root / "val" / "n02" / "0.JPEG", fmt="JPEG")  # the other split has it: the indices must agree
    with caplog.at_level("WARNING"):
        splits = build(root, "data.allow_empty_classes=true")
    assert splits.class_names == ["n01", "n02", "n03"]
    assert [label for path, label in splits.val.samples if "/n02/" in path] == [1]
    assert sorted({label for _, label in splits.train.samples}) == [0, 2]
    assert [(p.file, p.action) for p in splits.problems] == [(str(root / "train" / "n02"), "kept")]
    assert (
        f"{root / 'train' / 'n02'}: class folder 'n02' holds no image file (.jpg, .jpeg, .png, ... in any case); "
        "kept as a class (data.allow_empty_classes=true)" in caplog.text
    )
