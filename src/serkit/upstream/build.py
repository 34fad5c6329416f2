"""Config -> upstream (through the registry, with its freeze policy) and -> layer selector."""

from __future__ import annotations

from .base import UPSTREAMS, Upstream, UpstreamConfig
from .freezing import apply_freeze, check_freeze_policy
from .lora import add_lora, check_lora
from .layers import LayerSelector


def upstream_config(entry, key: str = "upstream") -> UpstreamConfig:
    """A config entry (a mapping or any UpstreamConfig) -> an instance of its upstream's own `Config`, every key
    checked (ConfigError "key '<key>.<field>' ...")."""
    return UPSTREAMS.config_of(entry, key, UpstreamConfig.name)


def build_upstream(cfg: UpstreamConfig, pretrained: bool = True) -> Upstream:
    """The upstream named by cfg.name (its component's Config, or a mapping / any UpstreamConfig that converts to
    it), with cfg.freeze applied (and LoRA adapters when cfg.lora_rank > 0).

    pretrained=False builds the architecture from the config files in cfg.source without loading weights
    (for a model bundle, which loads its own weights next)."""
    cfg = upstream_config(cfg)
    check_freeze_policy(cfg.freeze)  # fail before a long model load
    check_lora(cfg)
    upstream = UPSTREAMS.get(cfg.name).from_config(cfg, pretrained=pretrained)
    return add_lora(apply_freeze(upstream, cfg.freeze), cfg)


def build_layer_selector(cfg: UpstreamConfig, upstream: Upstream) -> LayerSelector:
    """hidden (upstream.num_layers x [B, T, D]) -> frames [B, T, D], as cfg.layers says."""
    return LayerSelector.from_config(cfg, upstream.num_layers)
