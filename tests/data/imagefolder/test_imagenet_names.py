"""ImageNet's wnid -> name table, for ImageNet-layout copies without LOC_synset_mapping.txt (Imagenette)."""

from __future__ import annotations

from pathlib import Path

from cvtrain.data.imagefolder.imagenet_names import imagenet_names
from cvtrain.data.splits import build_data
from tests.conftest import compose_config, make_imagefolder

# Imagenette's ten folders and their names
IMAGENETTE = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}


def test_the_table_holds_imagenets_thousand_classes_in_their_order() -> None:
    names = imagenet_names()
    assert len(names) == 1000 and list(names) == sorted(names)  # ImageNet-1k's class order
    assert list(names.items())[:2] == [("n01440764", "tench"), ("n01443537", "goldfish")]
    assert names["n04589890"] == "window screen" and list(names)[-1] == "n15075141"  # toilet tissue
    assert {k: names[k] for k in IMAGENETTE} == IMAGENETTE
    # ImageNet names two classes twice: torchvision's names tell them apart
    assert (names["n02012849"], names["n03126707"]) == ("crane bird", "crane")
    assert len(set(names.values())) == 1000


def test_imagenet_data_without_a_mapping_file_shows_names_not_wnids(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path, classes=("n03888257", "n01440764", "n02102040"), per_class=1)
    cfg = compose_config("data=imagenet", f"data.root={root}", "model=small_cnn")
    splits = build_data(cfg.data, cfg.aug, task="classification", need_train=True)
    assert splits.class_names == ["tench", "English springer", "parachute"]  # sorted folders' order


def test_folders_that_are_not_all_wnids_keep_their_names(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path, classes=("n01440764", "my_fish"), per_class=1)
    cfg = compose_config("data=imagefolder", f"data.root={root}", "model=small_cnn")
    assert build_data(cfg.data, cfg.aug, task="classification", need_train=True).class_names == [
        "my_fish",
        "n01440764",
    ]
