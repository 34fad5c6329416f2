import pytest
import torch
from torch.nn import functional as F

from serkit.errors import ConfigError
from serkit.upstream import LayerSelector, UpstreamConfig, build_layer_selector
from serkit.upstream.layers import stacked_layers


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


@pytest.mark.parametrize("layer_norm", [False, True])
def test_views_of_one_block_mix_without_a_copy_and_give_the_stacked_result_bit_for_bit(layer_norm):
    block = torch.stack(layers(seed=3))  # [L, B, T, D]: what a feature cache returns, each layer a view
    views, copies = list(block), [h.clone() for h in block]
    assert stacked_layers(views) is block
    assert stacked_layers(copies) is not block and torch.equal(stacked_layers(copies), block)
    selector = LayerSelector(4, "weighted", layer_norm=layer_norm)
    with torch.no_grad():
        selector.weights.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5]))
    results = []
    for hidden in (views, copies):
        selector.zero_grad()
        out = selector(hidden)
        out.pow(2).sum().backward()
        results.append((out.detach(), selector.weights.grad.clone()))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("pick", [
    lambda block: list(block)[::-1],  # the block's views, out of order
    lambda block: list(block)[:3],  # not all of the block
    lambda block: [h[:, :4] for h in block],  # views of a part of each layer
    lambda block: list(block.transpose(0, 1).contiguous().transpose(0, 1)),  # a block that is not contiguous
    lambda block: [h[:1] for h in block],  # contiguous, at the right address, but not the whole layer
    lambda block: [h.transpose(1, 2) for h in block],  # the right shape (T == D) and address, not contiguous
    lambda block: [h.requires_grad_() for h in list(block)],  # views whose gradient the caller wants
])
def test_anything_but_the_whole_block_in_order_is_stacked(pick):
    hidden = pick(torch.stack(layers(batch=4, frames=5, dim=5, seed=4)))  # B = L, T = D: no check passes by accident
    stacked = stacked_layers(hidden)
    assert stacked is not hidden[0]._base
    torch.testing.assert_close(stacked, torch.stack([h.clone() for h in hidden]), rtol=0, atol=0)
