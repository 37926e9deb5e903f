"""ClassificationTask's training loss: plain, label-smoothed, and on MixUp / CutMix soft targets (training only)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvtrain.contracts.batch import Batch
from cvtrain.errors import ConfigError
from cvtrain.tasks.classification import ClassificationTask

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
    torch.manual_seed(1)
    return [(torch.rand(3, 8, 8), i % len(CLASSES), {"path": f"{i}.png"}) for i in range(n)]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()


def test_without_options_the_loss_is_cross_entropy_of_the_labels() -> None:
    task, model = ClassificationTask(class_names=CLASSES), Recorder()
    batch = task.collate(samples())
    loss = task.training_step(model, batch)["loss"]
    torch.testing.assert_close(loss, F.cross_entropy(model.fc(batch.images.flatten(1)), batch.targets))
    assert torch.equal(model.inputs[0], batch.images)


def test_label_smoothing_is_the_formula_on_a_tiny_example() -> None:
    task = ClassificationTask(class_names=["a", "b", "c"], label_smoothing=0.1)
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    batch = Batch(images=logits, targets=torch.tensor([0]), meta=[{}])
    loss = task.training_step(nn.Identity(), batch)["loss"]
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
    x, mixed, y = batch.images, model.inputs[0], batch.targets
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
    x, mixed, y = batch.images, model.inputs[0], batch.targets
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
    assert torch.equal(model.inputs[0], batch.images)  # predict: as collated
    assert not torch.equal(model.inputs[1], batch.images)  # training: mixed


def test_label_smoothing_applies_to_mixed_targets_too() -> None:
    task, model = ClassificationTask(class_names=CLASSES, mixup=0.4, label_smoothing=0.2), Recorder()
    batch = task.collate(samples())
    torch.manual_seed(5)
    loss = task.training_step(model, batch)["loss"]
    torch.manual_seed(5)
    soft_images, soft = task.mix(batch.images, batch.targets)
    smoothed = 0.8 * soft + 0.2 / len(CLASSES)
    torch.testing.assert_close(loss, soft_cross_entropy(model.fc(soft_images.flatten(1)), smoothed))


@pytest.mark.parametrize("eps", [-0.1, 1.0])
def test_a_bad_label_smoothing_names_the_key(eps: float) -> None:
    with pytest.raises(ConfigError, match="model.label_smoothing"):
        ClassificationTask(class_names=CLASSES, label_smoothing=eps)
