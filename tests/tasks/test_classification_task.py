"""ClassificationTask's training loss: plain, label-smoothed, and on MixUp / CutMix soft targets (training only)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import to_dtype

from cvtrain.contracts.batch import BadSample, Batch
from cvtrain.errors import ConfigError
from cvtrain.tasks.classification import ClassificationTask
from cvtrain.tasks.inputs import ImageInput

CLASSES = ["circle", "square", "triangle", "cross"]


class Recorder(nn.Module):
    """A linear classifier that keeps every input it sees."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, len(CLASSES))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.fc(x.flatten(1))


def samples(n: int = 6) -> list[tuple[torch.Tensor, int, dict]]:
    """uint8 images, as the data pipeline delivers them (the task turns them into floats on the device)."""
    torch.manual_seed(1)
    return [
        (torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8), i % len(CLASSES), {"path": f"{i}.png"})
        for i in range(n)
    ]


def floats(images: torch.Tensor) -> torch.Tensor:
    """What the model sees without mean / std: the uint8 pixels in [0, 1] (torchvision's conversion)."""
    return to_dtype(images, torch.float32, scale=True)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def test_without_options_the_loss_is_cross_entropy_of_the_labels() -> None:
    task, model = ClassificationTask(class_names=CLASSES), Recorder()
    batch = task.collate(samples())
    loss = task.training_step(model, batch)["loss"]
    torch.testing.assert_close(
        loss, F.cross_entropy(model.fc(floats(batch.images).flatten(1)), batch.targets)
    )
    assert torch.equal(model.inputs[0], floats(batch.images))


def test_label_smoothing_is_the_formula_on_a_tiny_example() -> None:
    task = ClassificationTask(class_names=["a", "b", "c"], label_smoothing=0.1)
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    batch = Batch(images=torch.zeros(1, 3, 1, 1, dtype=torch.uint8), targets=torch.tensor([0]), meta=[{}])

    class FixedLogits(nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return logits

    loss = task.training_step(FixedLogits(), batch)["loss"]
    # q = (1 - eps) one-hot + eps / C = [0.9333, 0.0333, 0.0333]; loss = -sum q log softmax(logits)
    log_z = math.log(math.exp(2.0) + math.exp(0.0) + math.exp(-1.0))
    log_p = [2.0 - log_z, 0.0 - log_z, -1.0 - log_z]
    q = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    expected = -sum(qi * lp for qi, lp in zip(q, log_p, strict=True))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert (
        loss.item() > F.cross_entropy(logits, torch.tensor([0])).item()
    )  # smoothing costs a confident model


def test_mixup_feeds_mixed_images_and_the_loss_is_the_soft_target_cross_entropy() -> None:
    task, model = ClassificationTask(class_names=CLASSES, mixup=0.4), Recorder()
    batch = task.collate(samples())
    assert batch.targets.dtype == torch.long  # collate does not mix: evaluation uses the same collate
    loss = task.training_step(model, batch)["loss"]
    x, mixed, y = floats(batch.images), model.inputs[0], batch.targets
    # Recover lambda from the pixels: mixed = lam x + (1 - lam) x[i - 1].
    neighbour = x.roll(1, 0)
    lam = ((mixed - neighbour) / (x - neighbour))[0, 0, 0, 0].item()
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * neighbour)
    assert 0 < lam < 1
    one_hot = F.one_hot(y, len(CLASSES)).float()
    soft = lam * one_hot + (1 - lam) * one_hot.roll(1, 0)
    torch.testing.assert_close(loss, soft_cross_entropy(model.fc(mixed.flatten(1)), soft))


def test_cutmix_loss_weighs_each_label_by_its_area() -> None:
    task, model = ClassificationTask(class_names=CLASSES, cutmix=1.0), Recorder()
    batch = task.collate(samples())
    torch.manual_seed(3)
    loss = task.training_step(model, batch)["loss"]
    x, mixed, y = floats(batch.images), model.inputs[0], batch.targets
    pasted = (mixed != x).any(dim=1)[
        0
    ]  # [H, W]: the box copied from the neighbour (same box for every sample)
    assert pasted.any() and torch.equal(mixed[:, :, pasted], x.roll(1, 0)[:, :, pasted])
    lam = 1 - pasted.float().mean().item()
    one_hot = F.one_hot(y, len(CLASSES)).float()
    soft = lam * one_hot + (1 - lam) * one_hot.roll(1, 0)
    torch.testing.assert_close(loss, soft_cross_entropy(model.fc(mixed.flatten(1)), soft))


def test_evaluation_sees_the_batch_unmixed() -> None:
    task, model = ClassificationTask(class_names=CLASSES, mixup=1.0, cutmix=1.0), Recorder()
    batch = task.collate(samples())
    task.predict(model, batch)
    task.training_step(model, batch)
    assert torch.equal(model.inputs[0], floats(batch.images))  # predict: as collated
    assert not torch.equal(model.inputs[1], floats(batch.images))  # training: mixed


def test_label_smoothing_applies_to_mixed_targets_too() -> None:
    task, model = ClassificationTask(class_names=CLASSES, mixup=0.4, label_smoothing=0.2), Recorder()
    batch = task.collate(samples())
    torch.manual_seed(5)
    loss = task.training_step(model, batch)["loss"]
    torch.manual_seed(5)
    soft_images, soft = task.mix(floats(batch.images), batch.targets)
    smoothed = 0.8 * soft + 0.2 / len(CLASSES)
    torch.testing.assert_close(loss, soft_cross_entropy(model.fc(soft_images.flatten(1)), smoothed))


@pytest.mark.parametrize("eps", [-0.1, 1.0])
def test_a_bad_label_smoothing_names_the_key(eps: float) -> None:
    with pytest.raises(ConfigError, match="model.label_smoothing"):
        ClassificationTask(class_names=CLASSES, label_smoothing=eps)


MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def uint8_samples(n: int) -> list:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randint(0, 256, (3, 8, 8), generator=g, dtype=torch.uint8), i % 3, {"path": f"{i}.jpg"})
        for i in range(n)
    ]


def test_collate_keeps_uint8_and_training_and_predict_see_normalised_floats() -> None:
    task = ClassificationTask(class_names=["a", "b", "c"], inputs=ImageInput(mean=MEAN, std=STD))
    bad = BadSample(path="x.jpg", reason="broken")
    batch = task.collate([*uint8_samples(3), bad])
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (3, 3, 8, 8) and batch.bad == [bad]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 3))
    normalised = (batch.images.float() / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[
        :, None, None
    ]
    expected = F.cross_entropy(model(normalised), batch.targets)
    assert torch.allclose(task.training_step(model, batch)["loss"], expected, atol=1e-6)
    assert torch.allclose(task.predict(model, batch), model(normalised).softmax(1), atol=1e-6)
    empty = task.collate([bad])
    assert len(empty) == 0 and empty.images.dtype == torch.uint8
