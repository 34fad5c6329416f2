import pytest
import torch
from torch.nn import functional as F

from serkit.errors import ConfigError
from serkit.upstream import LayerSelector, UpstreamConfig, build_layer_selector


def layers(num_layers=4, batch=2, frames=5, dim=3, seed=0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, frames, dim, generator=generator) * (i + 1) for i in range(num_layers)]


@pytest.mark.parametrize("choice, index", [("last", 3), ("0", 0), ("2", 2), ("-1", 3), ("-4", 0), (1, 1)])
def test_last_or_one_layer_by_index(choice, index):
    hidden = layers()
    selector = LayerSelector(4, choice)
    assert torch.equal(selector(hidden), hidden[index])
    assert list(selector.parameters()) == []


@pytest.mark.parametrize("choice", ["4", "-5", "first", "1.5"])
def test_bad_choices_are_config_errors_naming_the_key(choice):
    with pytest.raises(ConfigError, match=r"upstream\.layers"):
        LayerSelector(4, choice)


def test_weighted_starts_as_the_uniform_average():
    hidden = layers()
    selector = LayerSelector(4, "weighted")
    assert torch.equal(selector.weights.detach(), torch.zeros(4))
    torch.testing.assert_close(selector(hidden), torch.stack(hidden).mean(0))


def test_weighted_uses_softmax_of_the_learned_weights():
    hidden = layers()
    selector = LayerSelector(4, "weighted")
    with torch.no_grad():
        selector.weights.copy_(torch.tensor([0.0, 1.0, -2.0, 3.0]))
    mix = torch.softmax(selector.weights.detach(), 0)
    torch.testing.assert_close(selector(hidden), sum(w * h for w, h in zip(mix, hidden)))


def test_weighted_with_layer_norm_normalises_each_layer_first():
    hidden = layers()
    selector = LayerSelector(4, "weighted", layer_norm=True)
    expected = torch.stack([F.layer_norm(h, (3,)) for h in hidden]).mean(0)
    torch.testing.assert_close(selector(hidden), expected)


def test_weights_get_gradient_and_change_after_a_step():
    hidden = layers()
    selector = LayerSelector(4, "weighted")
    optimiser = torch.optim.SGD(selector.parameters(), lr=0.1)
    selector(hidden).pow(2).mean().backward()
    assert selector.weights.grad is not None and selector.weights.grad.abs().sum() > 0
    optimiser.step()
    assert not torch.equal(selector.weights.detach(), torch.zeros(4))


def test_built_from_the_upstream_config():
    selector = build_layer_selector(UpstreamConfig(layers="-2", layer_norm=False), upstream=_Stub(num_layers=7))
    assert selector.choice == 5


class _Stub:
    def __init__(self, num_layers):
        self.num_layers = num_layers
