import pytest
import torch

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.inputs import PAD_VALUE, check_images, pad_images, pad_targets


def test_pad_images_to_a_common_multiple_of_32_at_bottom_right() -> None:
    a, b = torch.rand(3, 50, 70), torch.rand(3, 64, 33)
    batch, sizes = pad_images([a, b])
    assert batch.shape == (2, 3, 64, 96)
    assert sizes == [(50, 70), (64, 33)]
    assert torch.equal(batch[0, :, :50, :70], a) and torch.equal(batch[1, :, :64, :33], b)
    assert (batch[0, :, 50:] == PAD_VALUE).all() and (batch[1, :, :, 33:] == PAD_VALUE).all()


def test_check_images_rejects_non_contract_inputs() -> None:
    with pytest.raises(ValueError, match="image 1"):
        check_images([torch.rand(3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.uint8)])
    with pytest.raises(ValueError, match="at least one"):
        check_images([])
    assert len(check_images(torch.rand(2, 3, 8, 8))) == 2


def test_pad_targets_masks_padding_and_clips_boxes() -> None:
    targets = [
        {
            "boxes": torch.tensor([[-4.0, 5.0, 80.0, 20.0], [1.0, 2.0, 3.0, 4.0]]),
            "labels": torch.tensor([2, 0]),
        },
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    labels, boxes, mask = pad_targets(
        targets, [(30, 60), (64, 64)], num_classes=3, device=torch.device("cpu")
    )
    assert labels.tolist() == [[2, 0], [0, 0]]
    assert mask.tolist() == [[True, True], [False, False]]
    assert boxes[0, 0].tolist() == [0.0, 5.0, 60.0, 20.0]  # clipped to the image's own width


def test_pad_targets_rejects_labels_the_model_cannot_predict() -> None:
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels": torch.tensor([5])}]
    with pytest.raises(ConfigError, match="model.num_classes"):
        pad_targets(targets, [(8, 8)], num_classes=3, device=torch.device("cpu"))
