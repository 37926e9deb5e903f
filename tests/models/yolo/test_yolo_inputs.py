import pytest
import torch

from cvtrain.errors import ConfigError
from cvtrain.models.yolo.inputs import PAD_VALUE, check_images, pad_images, pad_targets
from tests.conftest import gpu_waits, needs_gpu


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


def random_targets(counts: list[int], size: int = 64, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for n in counts:
        corners = torch.rand(n, 2, 2, generator=g) * 1.4 * size - 0.2 * size  # some outside the image
        boxes = torch.cat([corners.amin(dim=1), corners.amax(dim=1)], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(0, 5, (n,), generator=g)})
    return targets


def test_pad_targets_puts_each_images_boxes_in_its_own_row_clipped_to_its_own_size() -> None:
    counts, sizes = [3, 0, 5, 1], [(40, 64), (64, 64), (64, 20), (10, 30)]
    targets = random_targets(counts)
    labels, boxes, mask = pad_targets(targets, sizes, num_classes=5, device=torch.device("cpu"))
    assert labels.shape == (4, 5) and boxes.shape == (4, 5, 4) and mask.shape == (4, 5)
    for i, (target, n, (height, width)) in enumerate(zip(targets, counts, sizes, strict=True)):
        limits = torch.tensor([width, height, width, height], dtype=torch.float32)
        assert mask[i].tolist() == [True] * n + [False] * (5 - n)
        assert torch.equal(labels[i, :n], target["labels"]) and not labels[i, n:].any()
        assert torch.equal(boxes[i, :n], torch.minimum(target["boxes"].clamp(min=0), limits))
        assert not boxes[i, n:].any()
    none = pad_targets(random_targets([0, 0]), sizes[:2], num_classes=5, device=torch.device("cpu"))
    assert [tuple(t.shape) for t in none] == [(2, 0), (2, 0, 4), (2, 0)]


@needs_gpu
def test_pad_targets_waits_for_the_gpu_once_per_batch() -> None:
    """Only for the label range check, whatever the number of images."""
    targets = [{k: v.cuda() for k, v in t.items()} for t in random_targets([3, 0, 5, 1, 7, 2])]
    sizes = [(64, 64)] * len(targets)
    with gpu_waits() as waits:
        labels, _, mask = pad_targets(targets, sizes, num_classes=5, device=torch.device("cuda"))
    assert len(waits) == 1 and labels.is_cuda and int(mask.sum()) == 18
