import pytest
import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from cvtrain.errors import ConfigError
from cvtrain.models.fcn8s import FCN8s
from cvtrain.models.upsampling import UPSAMPLE_MODES, MaxUnpoolUpsample

TINY = {"width": 4, "fc_width": 8}


@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
@pytest.mark.parametrize("size", [(37, 45), (64, 32), (1, 70)])
def test_logits_are_exactly_input_size_for_every_mode(mode, size):
    model = FCN8s(num_classes=3, upsample=mode, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert set(out) == {"out"}
    assert out["out"].shape == (2, 3, *size)


@pytest.mark.parametrize("mode", UPSAMPLE_MODES)
def test_backward_gives_finite_gradients_to_every_parameter(mode):
    torch.manual_seed(0)
    model = FCN8s(num_classes=4, upsample=mode, batch_norm=True, **TINY)
    target = torch.randint(0, 4, (2, 35, 41))
    loss = nn.functional.cross_entropy(model(torch.randn(2, 3, 35, 41))["out"], target)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def test_fcn8s_decoders_follow_the_mode():
    transposed = FCN8s(num_classes=3, upsample="transposed", **TINY)
    # FCN-8s proper: score maps fused from pool4 and pool3, learnable upsampling 2×, 2×, 8×.
    assert transposed.upscore8.conv.stride == (8, 8)
    assert transposed.score_pool4.in_channels == 32 and transposed.score_pool3.in_channels == 16
    unpool = FCN8s(num_classes=3, upsample="max_unpool", **TINY)
    assert all(isinstance(u, MaxUnpoolUpsample) for u in unpool.decoder.unpools)
    assert all(unpool.features[i].return_indices for i in unpool._pool_positions)
    assert not any(transposed.features[i].return_indices for i in transposed._pool_positions)


def test_max_unpool_decoder_uses_the_encoder_pool_indices():
    # The last unpooling step (back to full resolution) gets pool1's indices, so its output can be non-zero
    # only where pool1 took its maxima.
    model = FCN8s(num_classes=2, upsample="max_unpool", **TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    model.decoder.unpools[0].register_forward_hook(lambda m, args, out: seen.update(out=out, idx=args[1]))
    with torch.no_grad():
        model(x)
        _, indices = model._encode(x)
    assert torch.equal(seen["idx"], indices[0])
    nonzero = seen["out"].flatten(2) != 0
    positions = torch.zeros_like(nonzero).scatter_(2, indices[0].flatten(2), True)
    assert not (nonzero & ~positions).any()


def _fake_vgg16_state(width: int, fc_width: int) -> dict[str, torch.Tensor]:
    """A state dict with torchvision VGG16's key layout, scaled to `width` (64 is the real one)."""
    scaled = [v if v == "M" else v * width // 64 for v in cfgs["D"]]
    state = {f"features.{k}": v for k, v in make_layers(scaled).state_dict().items()}
    fc6 = nn.Linear(8 * width * 7 * 7, fc_width)
    fc7 = nn.Linear(fc_width, fc_width)
    state.update({"classifier.0.weight": fc6.weight, "classifier.0.bias": fc6.bias})
    state.update({"classifier.3.weight": fc7.weight, "classifier.3.bias": fc7.bias})
    return {k: v.detach().clone() for k, v in state.items()}


def test_vgg16_classifier_becomes_convolutional():
    state = _fake_vgg16_state(width=4, fc_width=8)
    model = FCN8s(num_classes=3, **TINY)
    model.load_vgg16_state(state)
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    # fc6 over a 7×7 pool5 map: the conv's centre output equals the Linear layer on the flattened map.
    pool5 = torch.randn(1, 32, 7, 7)
    linear = pool5.flatten(1) @ state["classifier.0.weight"].T + state["classifier.0.bias"]
    torch.testing.assert_close(model.fc6(pool5)[:, :, 3, 3], linear)
    h = torch.randn(1, 8, 2, 3)
    by_linear = (h.permute(0, 2, 3, 1) @ state["classifier.3.weight"].T + state["classifier.3.bias"]).permute(
        0, 3, 1, 2
    )
    torch.testing.assert_close(model.fc7(h), by_linear)


def test_vgg16_weights_of_the_wrong_width_are_a_config_error():
    model = FCN8s(num_classes=3, **TINY)
    with pytest.raises(ConfigError, match="width=64"):
        model.load_vgg16_state(_fake_vgg16_state(width=8, fc_width=8))


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="model.upsample"):
        FCN8s(num_classes=3, upsample="deconv", **TINY)
    with pytest.raises(ConfigError, match="fc_kernel"):
        FCN8s(num_classes=3, fc_kernel=4, **TINY)


def test_default_is_the_paper_size():
    # FCN-8s on VGG16 has ~134M parameters (fc6 alone is 7·7·512·4096).
    with torch.device("meta"):  # count without allocating
        model = FCN8s(num_classes=21)
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000


def test_tiny_fcn8s_fits_one_image():
    torch.manual_seed(0)
    model = FCN8s(num_classes=2, batch_norm=True, dropout=0.0, width=8, fc_width=16)
    image = torch.zeros(1, 3, 32, 32)
    image[..., 8:24, 8:24] = 1.0
    target = (image[:, 0] > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(image)["out"], target)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(image)["out"].argmax(1) == target).float().mean()
    assert accuracy > 0.9
