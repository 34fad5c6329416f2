"""SERModel: upstream(s) -> layer selection -> (fusion) -> aggregator(s) -> classifier, built from a config.

    fusion "none":  one upstream  -> frames -> aggregator -> embedding -> classifier
    fusion "early": n upstreams   -> frames aligned in time, concatenated along D -> one aggregator -> ...
    fusion "late":  n upstreams   -> one aggregator each -> embeddings concatenated -> classifier

The config names registry keys only (UPSTREAMS, AGGREGATORS). The model knows nothing of corpora or training.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .downstream import AGGREGATORS, AggregatorConfig, Classifier, ClassifierConfig
from .errors import ConfigError
from .fusion import EarlyFusion, LateFusion, Stream
from .upstream import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput, build_layer_selector, build_upstream

FUSIONS = ("none", "early", "late")


@dataclass
class ModelConfig:
    """upstreams: one, or several with fusion "early" / "late".
    fusion: "none" (exactly one upstream), "early" (frame-level concat, audio upstreams only) or "late"
        (embedding concat; text upstreams allowed).
    aggregators: one; with late fusion one per upstream, or one that is replicated for every upstream.
    fusion_frame_rate: early fusion's common frame rate (frames/s); None: the slowest upstream's.
    """

    upstreams: list[UpstreamConfig] = field(default_factory=lambda: [UpstreamConfig()])
    fusion: str = "none"
    aggregators: list[AggregatorConfig] = field(default_factory=lambda: [AggregatorConfig()])
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    fusion_frame_rate: float | None = None


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
        self.fusion = cfg.fusion
        self.upstreams = nn.ModuleList(upstreams)
        selectors = []
        for index, (upstream, upstream_cfg) in enumerate(zip(upstreams, cfg.upstreams)):
            with _config_key(f"model.upstreams[{index}]"):
                selectors.append(build_layer_selector(upstream_cfg, upstream))
        self.layer_selectors = nn.ModuleList(selectors)
        self.upstream_cfgs = list(cfg.upstreams)
        # one FeatureCache (or None) per upstream; a plain list, outside the state_dict (see use_feature_cache)
        self.feature_caches: list = [None] * len(upstreams)
        # training-only frame augmentation (training/augment.py), set by the trainer: a plain callable outside
        # the state_dict, applied to audio frames only while self.training, so evaluation never sees it
        self.frame_augment = None
        dims = [upstream.hidden_size for upstream in upstreams]

        self.early_fusion: EarlyFusion | None = None
        if cfg.fusion == "early":
            self.early_fusion = EarlyFusion([u.frame_rate for u in upstreams], dims, cfg.fusion_frame_rate)
            dims = [self.early_fusion.output_dim]
        aggregator_cfgs = cfg.aggregators * len(dims) if len(cfg.aggregators) == 1 else cfg.aggregators
        aggregators = [
            _build_aggregator(aggregator_cfg, dim, index)
            for index, (aggregator_cfg, dim) in enumerate(zip(aggregator_cfgs, dims))
        ]
        # late fusion concatenates the embeddings of its aggregators; otherwise there is exactly one aggregator.
        self.aggregate: nn.Module = LateFusion(aggregators) if cfg.fusion == "late" else aggregators[0]
        self.embedding_dim: int = self.aggregate.output_dim
        self.classifier = Classifier.from_config(cfg.classifier, self.embedding_dim, num_classes)

    def streams(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> list[Stream]:
        """One (frames [B, T_i, D_i], frame_lens_i [B]) per upstream, after layer selection."""
        streams = []
        for upstream, selector, cache in zip(self.upstreams, self.layer_selectors, self.feature_caches):
            if cache is None:
                hidden, frame_lens = upstream(wavs, wav_lens, texts)
            else:
                hidden, frame_lens = cache(upstream, wavs, wav_lens, texts)
                if upstream.frozen_blocks:  # the cache held the frozen bottom's layers; the top blocks train
                    hidden, frame_lens = upstream.encode_top(UpstreamOutput(hidden, frame_lens))
            frames = selector(hidden)
            if self.training and self.frame_augment is not None and upstream.modality == "audio":
                frames = self.frame_augment(frames, frame_lens)
            streams.append((frames, frame_lens))
        return streams

    def use_feature_cache(self, directory: str | Path, dtype: str = "float16") -> list[int]:
        """Read frozen audio upstreams' frames (or a "bottom:N" upstream's frozen bottom's) from a feature cache
        in `directory` (upstream/cache.py), computing each utterance's frames only once; -> indices of the
        upstreams now cached. Trained upstreams (freeze "cnn" / "none") and text upstreams always run.
        Weights and bundles are unchanged."""
        from .upstream.cache import FeatureCache, caches

        cached = []
        for index, (upstream, selector, upstream_cfg) in enumerate(
            zip(self.upstreams, self.layer_selectors, self.upstream_cfgs)
        ):
            if caches(upstream):
                self.feature_caches[index] = FeatureCache.for_upstream(upstream, upstream_cfg, selector, directory, dtype)
                cached.append(index)
        if not cached:
            warnings.warn("feature cache: no upstream is frozen (freeze 'all' or 'bottom:N') audio, so none is cached",
                          stacklevel=2)
        return cached

    def embed(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> torch.Tensor:
        """-> embedding [B, E]: the classifier's input."""
        streams = self.streams(wavs, wav_lens, texts)
        if self.fusion == "late":
            return self.aggregate(streams)
        frames, frame_lens = self.early_fusion(streams) if self.early_fusion is not None else streams[0]
        return self.aggregate(frames, frame_lens)

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
        if cfg.fusion == "early" and upstream_cls.modality == "text":
            raise ConfigError(
                f"key 'model.upstreams[{index}]' is the text upstream {upstream_cfg.name!r} with model.fusion "
                "'early'; text has no frame rate to align with audio frames: use model.fusion 'late'"
            )
    for index, aggregator_cfg in enumerate(cfg.aggregators):
        with _config_key(f"model.aggregators[{index}].name"):
            AGGREGATORS.get(aggregator_cfg.name)


def build_model(cfg: ModelConfig, num_classes: int, pretrained: bool = True) -> SERModel:
    """Model from its config via the registries. pretrained=False builds the upstreams' architecture only
    (a model bundle then loads its own weights)."""
    check_model_config(cfg)
    upstreams = []
    for index, upstream_cfg in enumerate(cfg.upstreams):
        with _config_key(f"model.upstreams[{index}]"):
            upstreams.append(build_upstream(upstream_cfg, pretrained=pretrained))
    return SERModel(cfg, upstreams, num_classes)


def _build_aggregator(cfg: AggregatorConfig, input_dim: int, index: int) -> nn.Module:
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
