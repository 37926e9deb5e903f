"""The classification task: uint8 batches from collate, normalised on the batch's device in training and predict."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvtrain.contracts.batch import BadSample
from cvtrain.tasks.classification import ClassificationTask
from cvtrain.tasks.inputs import ImageInput

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def samples(n: int) -> list:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randint(0, 256, (3, 8, 8), generator=g, dtype=torch.uint8), i % 3, {"path": f"{i}.jpg"})
        for i in range(n)
    ]


def test_collate_keeps_uint8_and_training_and_predict_see_normalised_floats() -> None:
    task = ClassificationTask(class_names=["a", "b", "c"], inputs=ImageInput(mean=MEAN, std=STD))
    bad = BadSample(path="x.jpg", reason="broken")
    batch = task.collate([*samples(3), bad])
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
