"""MixUp / CutMix batch transforms: soft targets, which transform `aug.mixup` / `aug.cutmix` give, bad alphas."""

import pytest
import torch
from torchvision.transforms import v2

from cvtrain.errors import ConfigError
from cvtrain.tasks.mixing import batch_mix


def batch(n: int = 8, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(n, 3, 16, 16), torch.arange(n) % classes


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.2, 0.0), (0.0, 1.0), (0.2, 1.0)])
def test_soft_targets_sum_to_one_and_mix_two_labels(mixup: float, cutmix: float) -> None:
    mix = batch_mix(mixup=mixup, cutmix=cutmix, num_classes=4)
    images, labels = batch()
    for _ in range(5):
        mixed, targets = mix(images, labels)
        assert mixed.shape == images.shape and targets.shape == (8, 4) and targets.dtype == torch.float32
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
        assert (targets >= 0).all()
        # Sample i is mixed with its neighbour i - 1: only their two labels carry weight.
        own = targets[torch.arange(8), labels]
        other = targets[torch.arange(8), labels.roll(1)]
        torch.testing.assert_close(own + other, torch.ones(8))


def test_which_transform_each_setting_gives() -> None:
    assert batch_mix(mixup=0.0, cutmix=0.0, num_classes=3) is None
    assert isinstance(batch_mix(mixup=0.2, cutmix=0.0, num_classes=3), v2.MixUp)
    cutmix = batch_mix(mixup=0.0, cutmix=1.0, num_classes=3)
    assert isinstance(cutmix, v2.CutMix) and cutmix.alpha == 1.0 and cutmix.num_classes == 3
    both = batch_mix(mixup=0.2, cutmix=1.0, num_classes=3)
    assert isinstance(both, v2.RandomChoice)
    assert [type(t) for t in both.transforms] == [v2.MixUp, v2.CutMix] and both.p == [0.5, 0.5]


def test_with_both_on_each_batch_takes_one_of_them() -> None:
    mix = batch_mix(mixup=1.0, cutmix=1.0, num_classes=4)
    images, labels = batch()
    kinds = set()
    torch.manual_seed(0)
    for _ in range(20):
        mixed, _ = mix(images, labels)
        pasted = (mixed == images.roll(1, 0)).all(dim=1)  # pixels copied from the neighbour: CutMix
        kinds.add("cutmix" if pasted.any() or torch.equal(mixed, images) else "mixup")
    assert kinds == {"mixup", "cutmix"}


def test_a_negative_alpha_names_the_key() -> None:
    with pytest.raises(ConfigError, match="aug.cutmix=-1"):
        batch_mix(mixup=0.0, cutmix=-1.0, num_classes=3)
