"""Feature cache for frozen upstreams: each utterance's frames are computed once and read from disk after.

A frozen upstream (freeze policy "all") gives the same frames for the same samples every time, so training
needs to run it only once per utterance: every later epoch, fold and run then costs only the downstream.
A partly frozen one (freeze "bottom:N") caches its frozen bottom's layers 0..N (`Upstream.encode_prefix`),
and every epoch runs only its trained top blocks on them (`Upstream.encode_top`).
Training installs it (`install_feature_cache`): each cacheable upstream's call is wrapped (`CachedForward`, the
instance's `forward`), so the model has no cache code, and the upstream contract, the state_dict's names and
values, the frozen-parameter fingerprint and the bundles are the same with or without it.

Key of one utterance's entry = sha256 of
  - the upstream's identity (`upstream_fingerprint`): its class and its `feature_version` (bumped by hand
    when a code change alters its frames: hashing the code itself threw gigabytes away for an edited
    comment), the config fields that change its output (name, whisper_input, cmn, ...; not source/layers),
    the number of frozen blocks (freeze "bottom:N"), the config files it saves into a bundle (HF
    config.json, preprocessor config), and every weight and buffer of `Upstream.cached_modules()` (the
    whole upstream, or its frozen bottom: trained top blocks change every step and never reach the cache);
  - the layers stored: the ones the layer selector reads (all for "weighted", one for "last" / an index);
  - the storage dtype;
  - the CONTENT: sha1 of the float32 samples actually fed (wavs[b, :wav_lens[b]]), so two files with the
    same audio share an entry and an edited file misses, whatever its path.

Layout: `<directory>/<upstream key>/upstream.json` (what the key stands for, for people) and
`<directory>/<upstream key>/<ab>/<content sha1>.safetensors`, one file per utterance holding
`layer_<i>` [T_real, D] for each stored layer (real frames only; padding is never stored).
Writes go to a temporary file that is renamed into place, so concurrent writers (DDP ranks, two runs)
and a crash never leave half a file; an unreadable file counts as a miss and is rewritten.

Size (float16, the default): T x D x 2 bytes per stored layer; RAVDESS (1440 clips, ~3.7 s, 50 Hz) with
Whisper tiny.en "weighted" (5 layers x 384) is ~1.0 GB, Whisper base (7 x 512) ~1.9 GB; float32 doubles it.
What a hit returns is bit-identical to what the miss that stored it returned (both are the stored values),
so epoch 1 and later epochs see the same features.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from ..util.atomic import atomic_path, write_json
from ..util.hashing import update_with_tensor
from .audio import check_batch
from .base import UPSTREAMS, Upstream, UpstreamConfig, UpstreamOutput
from .layers import LayerSelector

CACHE_FORMAT = 1  # bump when the file layout or the key recipe changes
DTYPES = {"float16": torch.float16, "float32": torch.float32}
# config fields that do not change what the upstream itself outputs (source: the weights and config files
# are hashed instead, so one model under two paths shares its entries)
_NOT_OUTPUT_FIELDS = ("source", "layers", "layer_norm", "freeze", "lora_rank", "lora_alpha", "lora_dropout",
                      "lora_targets",  # LoRA: only ever in trained blocks, never in what is cached
                      "pad_multiple_s")  # the padded width of a batch: every real frame is the same


def caches(upstream: Upstream) -> bool:
    """Whether a feature cache can stand in for (part of) the upstream: frozen, or with a frozen bottom."""
    return upstream.modality == "audio" and (upstream.frozen or upstream.frozen_blocks > 0)


def content_key(samples: torch.Tensor) -> str:
    """sha1 of the samples [S] as float32 bytes: the same audio gives the same key wherever it comes from."""
    array = samples.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha1(array.tobytes()).hexdigest()


def upstream_fingerprint(upstream: Upstream, cfg: UpstreamConfig) -> str:
    """sha256 (hex) of everything that decides a frozen upstream's output (see the module docstring)."""
    digest = hashlib.sha256(f"serkit-feature-cache/{CACHE_FORMAT}".encode())
    cls = type(upstream)
    digest.update(f"{cls.__module__}.{cls.__qualname__}/{cls.feature_version}".encode())
    # over the built class's defaults: "hf" with a Whisper source has no whisper_input, and builds the default
    fields = {k: v for k, v in {**asdict(cls.Config()), **asdict(cfg)}.items() if k not in _NOT_OUTPUT_FIELDS}
    fields["frozen_blocks"] = upstream.frozen_blocks
    # the key the class is registered under, not the one the config wrote: "hf" with a Whisper source builds
    # the "whisper" upstream, and must find the frames that `name: whisper` stored
    fields["name"] = UPSTREAMS.name_of(cls) or cfg.name
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    with tempfile.TemporaryDirectory() as tmp:
        upstream.save_config_files(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(tmp).as_posix().encode())
                digest.update(path.read_bytes())
    for index, module in enumerate(upstream.cached_modules()):  # the frozen weights the cached layers come from
        for name, tensor in sorted(module.state_dict().items()):
            update_with_tensor(digest, f"{index}.{name}", tensor)
    return digest.hexdigest()


def layers_read(selector: LayerSelector) -> tuple[int, ...]:
    """The layer indices a selector reads: all of them for "weighted", else the chosen one."""
    if selector.choice == "weighted":
        return tuple(range(selector.num_layers))
    return (int(selector.choice),)


def layers_cached(upstream: Upstream, selector: LayerSelector) -> tuple[int, ...]:
    """The layers to store: those the selector reads; with a frozen bottom of N blocks, those of them at or
    below N plus layer N itself (the top blocks' input)."""
    read = layers_read(selector)
    if not upstream.frozen_blocks:
        return read
    return tuple(sorted({i for i in read if i <= upstream.frozen_blocks} | {upstream.frozen_blocks}))


class FeatureCache:
    """Callable in place of a frozen upstream (or of its frozen bottom, `Upstream.encode_prefix`, when it has
    one): (encode, wavs [B, S], wav_lens [B]) -> UpstreamOutput, encode being that upstream or its encode_prefix.

    hidden: num_layers entries (frozen_blocks + 1 for a frozen bottom), [B, T, D] float32 for the stored layers
    (T = max real frames in the batch, zero-padded; read-only views of one [L_stored, B, T, D] block, see `_pad`:
    writing into one in place is an error under autograd) and None for the layers the selector never reads. Only
    the rows missing from the cache are run through `encode` (as one smaller batch); `hits` / `misses` count rows,
    `upstream_calls` batches.
    """

    def __init__(self, directory: str | Path, fingerprint: str, num_layers: int, layers: tuple[int, ...],
                 dtype: str = "float16", description: dict | None = None):
        if dtype not in DTYPES:
            raise ConfigError(f"train.feature_cache_dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
        if not layers or not all(0 <= i < num_layers for i in layers):
            raise ValueError(f"layers {layers} must be a non-empty subset of 0..{num_layers - 1}")
        self.num_layers = num_layers
        self.layers = tuple(sorted(set(layers)))
        self.dtype = DTYPES[dtype]
        key = hashlib.sha256(f"{fingerprint}|{self.layers}|{dtype}".encode()).hexdigest()[:24]
        self.directory = Path(directory) / key
        self.description = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "layers": list(self.layers),
                            "dtype": dtype, **(description or {})}
        self.hits = self.misses = self.upstream_calls = 0

    @classmethod
    def for_upstream(cls, upstream: Upstream, cfg: UpstreamConfig, selector: LayerSelector,
                     directory: str | Path, dtype: str = "float16") -> "FeatureCache":
        """A cache for `upstream`, which must be frozen (a trained encoder changes its frames every step) or
        have a frozen bottom (then the cache holds the bottom's layers 0..N only)."""
        if not caches(upstream):
            raise ConfigError(f"upstream {cfg.name!r} (freeze={cfg.freeze!r}) is trained, so its frames cannot "
                              "be cached: only freeze 'all' or 'bottom:N' audio upstreams can use train.feature_cache")
        description = {**asdict(cfg), "upstream": cfg.name, "class": type(upstream).__qualname__,
                       "frozen_blocks": upstream.frozen_blocks}
        num_layers = upstream.frozen_blocks + 1 if upstream.frozen_blocks else upstream.num_layers
        return cls(directory, upstream_fingerprint(upstream, cfg), num_layers, layers_cached(upstream, selector),
                   dtype, description)

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    @torch.no_grad()
    def __call__(self, encode, wavs: torch.Tensor, wav_lens: torch.Tensor) -> UpstreamOutput:
        """encode: what the cache stands for, (wavs, wav_lens) -> UpstreamOutput: a frozen upstream, or the
        `encode_prefix` of one with a frozen bottom; it runs on the rows the cache does not hold."""
        wav_lens = check_batch(wavs, wav_lens)
        keys = [content_key(wavs[b, : int(n)]) for b, n in enumerate(wav_lens.tolist())]
        rows: dict[str, list[torch.Tensor]] = {}
        for key in dict.fromkeys(keys):  # unique keys, batch order
            stored = self._read(key)
            if stored is not None:
                rows[key] = stored
        self.hits += sum(key in rows for key in keys)
        missing = [b for b, key in enumerate(keys) if key not in rows]
        self.misses += len(missing)
        if missing:
            self._compute(encode, wavs, wav_lens, missing, keys, rows)
        per_row = [rows[key] for key in keys]
        frame_lens = torch.tensor([layers[0].shape[0] for layers in per_row], dtype=torch.long, device=wavs.device)
        hidden: list[torch.Tensor | None] = [None] * self.num_layers
        for layer, frames in zip(self.layers, self._pad(per_row, wavs.device)):
            hidden[layer] = frames
        return UpstreamOutput(hidden, frame_lens)

    @staticmethod
    def _pad(per_row: list[list[torch.Tensor]], device: torch.device) -> list[torch.Tensor]:
        """B rows of stored layers (each [T_b, D]) -> one [B, T, D] float32 tensor per stored layer, zero-padded.

        They are views of one block [L_stored, B, T, D]: a weighted LayerSelector mixes that block itself instead
        of stacking the layers into a copy (the stack was a fifth of a cached head's epoch)."""
        frames_max = max(stored[0].shape[0] for stored in per_row)
        block = torch.zeros(len(per_row[0]), len(per_row), frames_max, per_row[0][0].shape[-1])
        for b, stored in enumerate(per_row):
            for slot, frames in enumerate(stored):
                block[slot, b, : frames.shape[0]] = frames  # float16 -> float32 is exact
        return list(block.to(device))

    def _compute(self, encode, wavs, wav_lens, missing, keys, rows) -> None:
        """Run `encode` on the missing rows only (duplicates once), store them, put them in `rows`."""
        firsts = list({keys[b]: b for b in missing[::-1]}.values())  # first row of each new key...
        firsts.sort()  # ...in batch order
        index = torch.tensor(firsts, device=wavs.device)
        sub_lens = wav_lens[index]
        sub_wavs = wavs[index, : int(sub_lens.max())]
        output = encode(sub_wavs, sub_lens)
        self.upstream_calls += 1
        for j, b in enumerate(firsts):
            frames = int(output.frame_lens[j])
            # what is returned is what is stored (rounded to the storage dtype), so a hit equals this miss
            layers = [output.hidden[i][j, :frames].detach().to("cpu", self.dtype).contiguous() for i in self.layers]
            self._write(keys[b], layers)
            rows[keys[b]] = layers

    def _read(self, key: str) -> list[torch.Tensor] | None:
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            tensors = load_file(path)
            return [tensors[f"layer_{i}"] for i in self.layers]
        except (SafetensorError, KeyError, OSError) as error:  # a damaged entry is recomputed, not fatal
            warnings.warn(f"feature cache entry {path} is unreadable ({error}); recomputing it", stacklevel=2)
            return None

    def _write(self, key: str, layers: list[torch.Tensor]) -> None:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        description = self.directory / "upstream.json"
        if not description.is_file():
            write_json(description, self.description)
        tensors = {f"layer_{i}": t for i, t in zip(self.layers, layers)}
        with atomic_path(path) as tmp:  # readers see the old entry, the new one, or none
            save_file(tensors, tmp, metadata={"frames": str(layers[0].shape[0])})

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "upstream_calls": self.upstream_calls,
                "directory": str(self.directory)}


class CachedForward:
    """An upstream's forward read through its FeatureCache; installed as the instance's `forward` (an attribute,
    not a wrapping module, so no state_dict name changes). (wavs [B, S], wav_lens [B], texts) -> UpstreamOutput."""

    def __init__(self, upstream: Upstream, cache: FeatureCache):
        self.cache = cache
        self.upstream = upstream
        # the computation the cache stands for, as the upstream ran it before the cache came
        self.encode = upstream.encode_prefix if upstream.frozen_blocks else upstream.forward

    def __call__(self, wavs: torch.Tensor, wav_lens: torch.Tensor, texts: list[str] | None = None) -> UpstreamOutput:
        output = self.cache(self.encode, wavs, wav_lens)
        # with a frozen bottom the cache held its layers; the trained top blocks run on them every time
        return self.upstream.encode_top(output) if self.upstream.frozen_blocks else output


def install_feature_cache(model, directory: str | Path, dtype: str = "float16") -> dict[int, FeatureCache]:
    """Make each frozen audio upstream of `model` (an SERModel: upstreams, layer_selectors, upstream_cfgs) read its
    frames (a "bottom:N" upstream: its frozen bottom's) from a FeatureCache in `directory`, computing each
    utterance's only once; -> {upstream index: its cache}. Trained (freeze "cnn" / "none") and text upstreams
    always run."""
    installed = {}
    for index, (upstream, selector, cfg) in enumerate(zip(model.upstreams, model.layer_selectors,
                                                          model.upstream_cfgs)):
        if caches(upstream):
            installed[index] = FeatureCache.for_upstream(upstream, cfg, selector, directory, dtype)
            upstream.forward = CachedForward(upstream, installed[index])
    if not installed:
        warnings.warn("feature cache: no upstream is frozen (freeze 'all' or 'bottom:N') audio, so none is cached",
                      stacklevel=2)
    return installed


def installed_caches(model) -> list[FeatureCache]:
    """The FeatureCaches `install_feature_cache` put on the model's upstreams, in upstream order."""
    return [upstream.forward.cache for upstream in model.upstreams if isinstance(upstream.forward, CachedForward)]
