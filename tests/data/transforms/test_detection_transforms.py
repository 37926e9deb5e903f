"""Detection transforms: boxes follow flips and the random scale (zoom out = resize, zoom in = crop); boxes made
degenerate are removed with their labels; evaluation changes nothing; images stay uint8."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision import tv_tensors

from cvtrain.config import to_typed
from cvtrain.config.compose import CONF_DIR, ConfigSource, compose_config, config_composer
from cvtrain.config.training import AugConfig
from cvtrain.data.transforms.detection import detection_transforms
from cvtrain.errors import ConfigError

MEAN = [0.485, 0.456, 0.406]


def aug(**overrides: object) -> SimpleNamespace:
    fields = {"hflip": 0.0, "scale_range": None, "photometric": False, "mean": MEAN}
    return SimpleNamespace(**{**fields, **overrides})


def scene(boxes: list[list[float]], size: tuple[int, int] = (60, 80)) -> tuple[tv_tensors.Image, dict]:
    """A black image with each box filled white, and its target."""
    height, width = size
    pixels = torch.zeros(3, height, width, dtype=torch.uint8)
    for x0, y0, x1, y1 in boxes:
        pixels[:, int(y0) : int(y1), int(x0) : int(x1)] = 255
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(boxes).reshape(-1, 4), format="XYXY", canvas_size=size
        ),
        "labels": torch.arange(len(boxes), dtype=torch.int64),
    }
    return tv_tensors.Image(pixels), target


def white_extent(image: torch.Tensor) -> list[float]:
    """XYXY extent (continuous pixels) of the bright pixels of a uint8 image."""
    ys, xs = torch.nonzero(image[0] > 127, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]


def test_flip_moves_boxes_with_the_pixels() -> None:
    image, target = scene([[10, 20, 30, 50]])
    out_image, out_target = detection_transforms(aug(hflip=1.0), train=True)(image, target)
    assert out_target["boxes"].tolist() == [[50.0, 20.0, 70.0, 50.0]]  # 80 - 30, 80 - 10
    assert white_extent(out_image) == [50.0, 20.0, 70.0, 50.0]
    assert isinstance(out_target["boxes"], tv_tensors.BoundingBoxes)


def test_zoom_out_shrinks_boxes_about_the_centre_with_the_pixels() -> None:
    image, target = scene([[20, 10, 60, 50]])  # centre of the 80 x 60 canvas is (40, 30)
    out_image, out_target = detection_transforms(aug(scale_range=[0.5, 0.5]), train=True)(image, target)
    assert out_image.shape == image.shape  # same canvas, smaller content
    assert out_target["boxes"].tolist() == [[30.0, 20.0, 50.0, 40.0]]
    assert white_extent(out_image) == pytest.approx([30.0, 20.0, 50.0, 40.0], abs=1.0)
    # the uncovered border takes the mean colour, not black
    assert out_image[:, 0, 0].tolist() == [round(255 * m) for m in MEAN]


def test_zoom_in_crops_boxes_at_the_border_and_drops_those_pushed_out() -> None:
    # scale 2 about (40, 30): the centred box doubles, the edge box is cut at the border, the corner box leaves
    image, target = scene([[35, 25, 45, 35], [50, 20, 70, 40], [0, 0, 10, 8]])
    out_image, out_target = detection_transforms(aug(scale_range=[2.0, 2.0]), train=True)(image, target)
    assert out_target["boxes"].tolist() == [[30.0, 20.0, 50.0, 40.0], [60.0, 10.0, 80.0, 50.0]]
    assert out_target["labels"].tolist() == [0, 1]  # the corner box (label 2) was removed with its label
    assert white_extent(out_image[:, :, 55:]) == pytest.approx([5.0, 10.0, 25.0, 50.0], abs=1.0)


def test_degenerate_boxes_are_removed_with_their_labels() -> None:
    image, target = scene([[10, 10, 30, 30]])
    target["boxes"] = tv_tensors.BoundingBoxes(
        torch.tensor([[10.0, 10, 30, 30], [5, 5, 5, 20], [40, 40, 40.5, 50]]),
        format="XYXY",
        canvas_size=(60, 80),
    )
    target["labels"] = torch.tensor([3, 1, 2])
    _, out = detection_transforms(aug(), train=True)(image, target)
    assert out["boxes"].tolist() == [[10.0, 10.0, 30.0, 30.0]] and out["labels"].tolist() == [3]


def test_photometric_distortion_leaves_boxes_alone() -> None:
    image, target = scene([[10, 20, 30, 50], [40, 5, 70, 25]])
    torch.manual_seed(0)
    t = detection_transforms(aug(photometric=True), train=True)
    for _ in range(5):
        _, out = t(image, target)
        assert out["boxes"].tolist() == target["boxes"].tolist()


def test_eval_changes_nothing_and_works_on_a_bare_image() -> None:
    image, target = scene([[10, 20, 30, 50]])
    t = detection_transforms(aug(hflip=1.0, scale_range=[0.5, 2.0], photometric=True), train=False)
    out_image, out_target = t(image, target)
    assert torch.equal(out_image, image) and out_image.dtype == torch.uint8  # the task makes it float
    assert out_target["boxes"].tolist() == [[10.0, 20.0, 30.0, 50.0]]
    assert t(image).shape == (3, 60, 80)  # `cvtrain predict` inputs have no target


def test_bad_scale_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="aug.scale_range"):
        detection_transforms(aug(scale_range=[1.5, 0.5]), train=True)


def composed_aug(option: str, config_dir: Path | None = None) -> AugConfig:
    overrides = [f"aug={option}", "model=yolo", "data=shapes", "data.scene_size=64"]
    with config_composer(ConfigSource(config_dir=None if config_dir is None else str(config_dir))):
        return to_typed(compose_config(overrides)).aug


def test_a_copy_of_aug_yolo_in_a_users_config_dir_takes_the_same_pipeline(tmp_path: Path) -> None:
    """The pipeline follows aug.letterbox, not the preset's name: aug=yolo copied to myconf/aug/myaug.yaml (and
    renamed) letterboxes and jitters exactly as aug=yolo does, in training and in evaluation."""
    (tmp_path / "aug").mkdir()
    yolo_yaml = (Path(CONF_DIR) / "aug" / "yolo.yaml").read_text()
    (tmp_path / "aug" / "myaug.yaml").write_text(yolo_yaml.replace("name: yolo", "name: myaug"))
    yolo, mine = composed_aug("yolo"), composed_aug("myaug", config_dir=tmp_path)
    assert mine.name == "myaug" and mine.letterbox and yolo.letterbox
    image, target = scene([[10, 20, 30, 50]])
    for train in (True, False):
        outputs = []
        for option in (yolo, mine):
            torch.manual_seed(0)
            outputs.append(detection_transforms(option, train=train)(image, target))
        (yolo_image, yolo_target), (my_image, my_target) = outputs
        assert max(yolo_image.shape[-2:]) == 64  # letterboxed to aug.image_size
        assert torch.equal(yolo_image, my_image) and torch.equal(yolo_target["boxes"], my_target["boxes"])


def test_without_letterbox_a_preset_named_yolo_is_the_detection_pipeline() -> None:
    out_image, _ = detection_transforms(aug(name="yolo", letterbox=False), train=False)(
        *scene([[10, 20, 30, 50]])
    )
    assert out_image.shape == (3, 60, 80)  # not letterboxed
