"""torchvision classifiers with cvtrain's options: num_classes from the data, local pretrained weights,
dropout where the architecture has it, stochastic depth for the ResNet family, and freezing the bottom stages for
transfer learning."""

from __future__ import annotations

import inspect

from torch import nn
from torchvision import models
from torchvision.ops import FrozenBatchNorm2d

from cvtrain.errors import ConfigError
from cvtrain.models.small_cnn import SmallCNN
from cvtrain.models.stochastic_depth import MODES, add_stochastic_depth
from cvtrain.models.weights import default_weights, local_weights_state


def build_classifier(
    *,
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    freeze: str | None = None,
    dropout: float | None = None,
    stochastic_depth: float = 0.0,
    stochastic_depth_mode: str = "row",
) -> nn.Module:
    """`arch` is a torchvision classification builder name, or `small_cnn` (ours, for small images).

    `stochastic_depth` > 0 drops residual branches in training (ResNet family; see `stochastic_depth.py`)."""
    if arch == "small_cnn":
        if pretrained:
            raise ConfigError("model.pretrained: small_cnn has no pretrained weights; use pretrained=false.")
        model: nn.Module = SmallCNN(num_classes=num_classes, dropout=0.2 if dropout is None else dropout)
    elif arch not in models.list_models(module=models):
        raise ConfigError(
            f"model.arch={arch!r} is not a torchvision classifier; see torchvision.models.list_models()."
        )
    else:
        model = _torchvision_classifier(arch, num_classes, pretrained, dropout)
    if stochastic_depth != 0 or stochastic_depth_mode not in MODES:  # 0: off, but a bad mode still fails
        add_stochastic_depth(model, stochastic_depth, stochastic_depth_mode)
    if freeze is not None:
        freeze_up_to(model, freeze)
    return model


def _torchvision_classifier(
    arch: str, num_classes: int, pretrained: bool, dropout: float | None
) -> nn.Module:
    kwargs = {}
    if dropout is not None:
        if "dropout" not in inspect.signature(models.get_model_builder(arch)).parameters and not _has_dropout(
            arch
        ):
            raise ConfigError(f"model.dropout: {arch} has no dropout layer; leave model.dropout=null.")
        kwargs["dropout"] = dropout
    if not pretrained:
        return models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    # Build with the pretrained head size, load, then replace the head for our classes.
    weights = default_weights(arch)
    model = models.get_model(arch, weights=None, num_classes=len(weights.meta["categories"]), **kwargs)
    model.load_state_dict(local_weights_state(weights))
    _replace_head(model, num_classes)
    return model


def _has_dropout(arch: str) -> bool:
    return any(
        isinstance(m, nn.Dropout) for m in models.get_model(arch, weights=None, num_classes=2).modules()
    )


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer for a fresh one with `num_classes` outputs."""
    parent, name, last = None, None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            parent_name, _, name = module_name.rpartition(".")
            parent, last = model.get_submodule(parent_name) if parent_name else model, module
    if last is None:
        raise ConfigError(f"cannot find the classification layer of {type(model).__name__} to resize it.")
    setattr(parent, name, nn.Linear(last.in_features, num_classes))


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The bottom-to-top stages `model.freeze` can name: top-level children, with Sequentials split into
    their children (e.g. resnet: conv1, bn1, ..., layer1..layer4, fc; alexnet: features.0 ... classifier.6)."""
    result = []
    for name, child in model.named_children():
        if isinstance(child, nn.Sequential) and not name.startswith("layer"):
            result.extend((f"{name}.{sub}", m) for sub, m in child.named_children())
        else:
            result.append((name, child))
    return result


def freeze_up_to(model: nn.Module, stage: str) -> None:
    """Freeze every stage from the input up to and including `stage`; their BatchNorms stop updating statistics."""
    names = [name for name, _ in stages(model)]
    if stage not in names:
        raise ConfigError(
            f"model.freeze={stage!r} is not a stage of this model; choose one of: {', '.join(names)}"
        )
    for name, module in stages(model):
        for p in module.parameters():
            p.requires_grad_(False)
        if isinstance(module, nn.BatchNorm2d):  # a stage that is itself a BatchNorm (resnet's bn1)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, _frozen(module))
        else:
            freeze_batchnorm(module)
        if name == stage:
            break


def _frozen(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    frozen.weight.copy_(bn.weight.detach())
    frozen.bias.copy_(bn.bias.detach())
    frozen.running_mean.copy_(bn.running_mean)
    frozen.running_var.copy_(bn.running_var)
    return frozen


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d inside `module` by a FrozenBatchNorm2d holding the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _frozen(child))
        else:
            freeze_batchnorm(child)
