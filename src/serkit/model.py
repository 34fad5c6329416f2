"""SERModel: upstream(s) -> layer selection -> (fusion) -> aggregator(s) -> classifier, built from a config.

    fusion "none":  one upstream  -> frames -> aggregator -> embedding -> classifier
    fusion "early": n upstreams   -> frames aligned in time, concatenated along D -> one aggregator -> ...
    fusion "late":  n upstreams   -> one aggregator each -> embeddings concatenated -> classifier

The config names registry keys only (UPSTREAMS, AGGREGATORS). The model knows nothing of corpora or training.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .downstream import AGGREGATORS, AggregatorConfig, Classifier, ClassifierConfig, aggregator_config
from .errors import ConfigError
from .fusion import EarlyFusion, LateFusion, SingleStream, Stream
from .upstream import (UPSTREAMS, Upstream, UpstreamConfig, build_layer_selector, build_upstream,
                       upstream_config)

FUSIONS = ("none", "early", "late")


@dataclass
class ModelConfig:
    """upstreams: one, or several with fusion "early" / "late".
    fusion: "none" (exactly one upstream), "early" (frame-level concat, audio upstreams only) or "late"
        (embedding concat; text upstreams allowed).
    aggregators: one; with late fusion one per upstream, or one that is replicated for every upstream.
    fusion_frame_rate: early fusion's common frame rate (frames/s); None: the slowest upstream's.

    Each upstream / aggregator entry is its component's own config (WhisperConfig, EcapaConfig, ...); in YAML a
    mapping {name: <registry key>, <its parameters>}, which the schema leaves free (list[Any]) and __post_init__
    turns into that component's config class, every key checked (model.aggregators.0.KEY in the message).
    """

    upstreams: list[Any] = field(default_factory=lambda: [UpstreamConfig()])
    fusion: str = "none"
    aggregators: list[Any] = field(default_factory=lambda: [AggregatorConfig()])
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    fusion_frame_rate: float | None = None

    def __post_init__(self):
        # mappings (YAML, to_object) are resolved here; config objects stay as given until build (a Python caller's
        # unknown name is then refused by check_model_config with the others)
        self.upstreams = [upstream_config(entry, f"model.upstreams.{index}") if isinstance(entry, dict) else entry
                          for index, entry in enumerate(self.upstreams)]
        self.aggregators = [aggregator_config(entry, f"model.aggregators.{index}") if isinstance(entry, dict)
                            else entry for index, entry in enumerate(self.aggregators)]


class SERModel(nn.Module):
    """wavs [B, S] float32 16 kHz zero-padded, wav_lens [B] samples, texts (for text upstreams) -> logits [B, C].

    Built by `build_model(cfg, num_classes)`; constructing it from already built upstreams (one per
    cfg.upstreams entry, same order) is for callers that load or share encoders themselves.
    """

    def __init__(self, cfg: ModelConfig, upstreams: list[Upstream], num_classes: int):
        super().__init__()
        check_model_config(cfg)
        if len(upstreams) != len(cfg.upstreams):
            raise ValueError(f"{len(upstreams)} upstreams given for {len(cfg.upstreams)} in model.upstreams")
        self.upstreams = nn.ModuleList(upstreams)
        selectors = []
        for index, (upstream, upstream_cfg) in enumerate(zip(upstreams, cfg.upstreams)):
            with _config_key(f"model.upstreams[{index}]"):
                selectors.append(build_layer_selector(upstream_cfg, upstream))
        self.layer_selectors = nn.ModuleList(selectors)
        self.upstream_cfgs = list(cfg.upstreams)
        # training-only frame augmentation (training/augment.py), set by the trainer: a plain callable outside
        # the state_dict, applied to audio frames only while self.training, so evaluation never sees it
        self.frame_augment = None
        dims = [upstream.hidden_size for upstream in upstreams]
        # streams -> embedding [B, E], one module per fusion (fusion.py)
        if cfg.fusion == "late":
            aggregator_cfgs = cfg.aggregators * len(dims) if len(cfg.aggregators) == 1 else cfg.aggregators
            self.aggregate = LateFusion([_build_aggregator(aggregator_cfg, dim, index)
                                         for index, (aggregator_cfg, dim) in enumerate(zip(aggregator_cfgs, dims))])
        elif cfg.fusion == "early":
            self.aggregate = EarlyFusion([u.frame_rate for u in upstreams],
                                         _build_aggregator(cfg.aggregators[0], sum(dims), 0), cfg.fusion_frame_rate)
        else:
            self.aggregate = SingleStream(_build_aggregator(cfg.aggregators[0], dims[0], 0))
        self.embedding_dim: int = self.aggregate.output_dim
        self.classifier = Classifier.from_config(cfg.classifier, self.embedding_dim, num_classes)

    def streams(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> list[Stream]:
        """One (frames [B, T_i, D_i], frame_lens_i [B]) per upstream, after layer selection."""
        streams = []
        for upstream, selector in zip(self.upstreams, self.layer_selectors):
            hidden, frame_lens = upstream(wavs, wav_lens, texts)
            frames = selector(hidden)
            if self.training and self.frame_augment is not None and upstream.modality == "audio":
                frames = self.frame_augment(frames, frame_lens)
            streams.append((frames, frame_lens))
        return streams

    def embed(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> torch.Tensor:
        """-> embedding [B, E]: the classifier's input."""
        return self.aggregate(self.streams(wavs, wav_lens, texts))

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> torch.Tensor:
        """-> logits [B, num_classes]."""
        return self.classifier(self.embed(wavs, wav_lens, texts))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"upstream": encoder parameters, "downstream": everything else (layer weights, aggregators, head)},
        for separate learning rates. Frozen parameters are included (requires_grad False): callers filter."""
        upstream_ids = {id(p) for p in self.upstreams.parameters()}
        return {
            "upstream": list(self.upstreams.parameters()),
            "downstream": [p for p in self.parameters() if id(p) not in upstream_ids],
        }


def check_model_config(cfg: ModelConfig) -> None:
    """Refuse an inconsistent model config before anything is built (the message names the key)."""
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"key 'model.fusion' is {cfg.fusion!r}; expected one of {', '.join(FUSIONS)}")
    n_upstreams, n_aggregators = len(cfg.upstreams), len(cfg.aggregators)
    if n_upstreams == 0:
        raise ConfigError("key 'model.upstreams' is empty; expected at least one upstream")
    if cfg.fusion == "none" and n_upstreams != 1:
        raise ConfigError(
            f"key 'model.upstreams' has {n_upstreams} entries with model.fusion 'none'; expected exactly one "
            "(set model.fusion to 'early' or 'late' to combine several)"
        )
    allowed = (1, n_upstreams) if cfg.fusion == "late" else (1,)
    if n_aggregators not in allowed:
        expected = f"1 or {n_upstreams} (one per upstream)" if cfg.fusion == "late" else "exactly 1"
        raise ConfigError(
            f"key 'model.aggregators' has {n_aggregators} entries for {n_upstreams} upstreams with model.fusion "
            f"{cfg.fusion!r}; expected {expected}"
        )
    for index, upstream_cfg in enumerate(cfg.upstreams):
        with _config_key(f"model.upstreams[{index}].name"):
            upstream_cls = UPSTREAMS.get(upstream_cfg.name)
        upstream_config(upstream_cfg, f"model.upstreams.{index}")
        if cfg.fusion == "early" and upstream_cls.modality == "text":
            raise ConfigError(
                f"key 'model.upstreams[{index}]' is the text upstream {upstream_cfg.name!r} with model.fusion "
                "'early'; text has no frame rate to align with audio frames: use model.fusion 'late'"
            )
    for index, aggregator_cfg in enumerate(cfg.aggregators):
        with _config_key(f"model.aggregators[{index}].name"):
            AGGREGATORS.get(aggregator_cfg.name)
        aggregator_config(aggregator_cfg, f"model.aggregators.{index}")


def build_model(cfg: ModelConfig, num_classes: int, pretrained: bool = True) -> SERModel:
    """Model from its config via the registries. pretrained=False builds the upstreams' architecture only
    (a model bundle then loads its own weights)."""
    check_model_config(cfg)
    # every entry as its component's own config class (a caller may give a mapping or the base class)
    cfg = replace(cfg, upstreams=[upstream_config(entry, f"model.upstreams.{index}")
                                  for index, entry in enumerate(cfg.upstreams)])
    upstreams = []
    for index, upstream_cfg in enumerate(cfg.upstreams):
        with _config_key(f"model.upstreams[{index}]"):
            upstreams.append(build_upstream(upstream_cfg, pretrained=pretrained))
    return SERModel(cfg, upstreams, num_classes)


def _build_aggregator(cfg: AggregatorConfig, input_dim: int, index: int) -> nn.Module:
    cfg = aggregator_config(cfg, f"model.aggregators.{index}")
    with _config_key(f"model.aggregators[{index}]"):
        return AGGREGATORS.get(cfg.name).from_config(cfg, input_dim)


@contextmanager
def _config_key(key: str):
    """Prefix a ConfigError raised inside with the config key it concerns."""
    try:
        yield
    except ConfigError as error:
        if str(error).startswith(key):
            raise
        raise ConfigError(f"{key}: {error}") from None
