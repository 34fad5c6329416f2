"""The disk a `serkit paper` run on IEMOCAP needs, per experiment and in all, from the models' sizes.

    python scripts/disk_estimate.py                      # the paper's 11 configs, top 5, 5 folds
    python scripts/disk_estimate.py --top-k 3 configs/paper/05_w2v2_ecapa.yaml

Each config's SERModel is built as serkit builds it, on torch's `meta` device (shapes only, no memory, no
download). The pretrained encoders' architectures come from ARCHITECTURES below, copied from their hub
config.json files, since the hub cannot be reached here. What a fold writes (training/fold.py):
- while it trains: top-k weights files with the trained tensors only (frozen upstream weights left out), and
  up to k + 1 of them, since an evicted file is deleted at the next validation; and last.ckpt = the trained
  tensors + AdamW's two moments per trained parameter, twice over while it is rewritten (temp + old).
- when it is done: the model bundle (every tensor, frozen ones included, safetensors); checkpoints/ is
  deleted unless train.keep_checkpoints=true.
Experiments run one after another (`serkit paper`), so the peak is the bundles already written plus the
worst moment of the fold in training. Not counted: the corpus, the hub cache of the pretrained encoders
(about their bundle size, once per encoder), logs and reports (kilobytes), and the feature cache (off
unless train.feature_cache is set).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from serkit.checkpoint import trained_state_dict
from serkit.config import ExperimentConfig, load_config
from serkit.model import build_model
from serkit.training.paper import PAPER_CONFIG_DIR

# hub config.json of each preset the paper's configs name (only the fields that set tensor shapes)
LARGE_SPEECH = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                    conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
                    conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
                    num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)
ARCHITECTURES = {
    "wav2vec2-large-robust": ("Wav2Vec2Config", LARGE_SPEECH),        # facebook/wav2vec2-large-robust
    "hubert-large-ll60k": ("HubertConfig", LARGE_SPEECH),             # facebook/hubert-large-ll60k
    "bert-base-uncased": ("BertConfig", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                             num_attention_heads=12, intermediate_size=3072,
                                             max_position_embeddings=512, type_vocab_size=2)),
}
NUM_CLASSES = 4  # IEMOCAP: neu, hap (+exc), ang, sad
FOLDS = 5        # IEMOCAP: one fold per session
ADAM_MOMENTS = 2
GB = 1e9


@dataclass
class Sizes:
    """Bytes of one experiment's files. bundle: model.safetensors of a fold; trained: one top-k file;
    last: last.ckpt (trained tensors + optimiser moments)."""

    params: int
    trained_params: int
    bundle: int
    trained: int
    last: int

    def fold_peak(self, k: int) -> int:
        """The most a training fold holds at once: k + 1 top-k files and last.ckpt twice, or, at its end, k
        files, last.ckpt and the bundle being written."""
        return max((k + 1) * self.trained + 2 * self.last, k * self.trained + self.last + self.bundle)

    def kept(self, k: int, keep_checkpoints: bool) -> int:
        """What a finished fold leaves."""
        return self.bundle + (k * self.trained + self.last if keep_checkpoints else 0)


def architecture_dir(preset: str, root: Path) -> Path:
    """A folder holding `preset`'s config files (as the hub has them), for build_model(pretrained=False)."""
    import transformers

    if preset not in ARCHITECTURES:
        raise SystemExit(f"upstream source {preset!r}: no architecture known here; add its hub config.json "
                         f"fields to ARCHITECTURES in {__file__} (known: {', '.join(ARCHITECTURES)})")
    directory = root / preset
    if directory.is_dir():
        return directory
    config_class, fields = ARCHITECTURES[preset]
    getattr(transformers, config_class)(**fields).save_pretrained(directory)
    if config_class == "BertConfig":  # the tokenizer's vocabulary does not change any tensor's shape
        vocab = directory / "vocab.txt"
        vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) + "\n")
        transformers.BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(directory)
    else:
        transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(directory)
    return directory


def experiment_sizes(cfg: ExperimentConfig, architectures: Path) -> Sizes:
    for upstream in cfg.model.upstreams:
        if upstream.name in ("hf", "text"):
            upstream.source = str(architecture_dir(upstream.source or "bert-base-uncased", architectures))
    with torch.device("meta"):
        model = build_model(cfg.model, num_classes=NUM_CLASSES, pretrained=False)
    state, trained = model.state_dict(), trained_state_dict(model)
    parameters = list(model.parameters())
    trained_parameters = [p for p in parameters if p.requires_grad]
    moments = ADAM_MOMENTS * sum(p.numel() * p.element_size() for p in trained_parameters)
    return Sizes(params=sum(p.numel() for p in parameters),
                 trained_params=sum(p.numel() for p in trained_parameters),
                 bundle=safetensors_bytes(state), trained=safetensors_bytes(trained),
                 last=safetensors_bytes(trained) + moments)


def safetensors_bytes(state: dict[str, torch.Tensor]) -> int:
    """A safetensors file's size: an 8-byte length, a JSON header (name, dtype, shape, offsets per tensor),
    the raw tensors."""
    header = {name: {"dtype": "F32", "shape": list(t.shape), "data_offsets": [0, t.numel() * t.element_size()]}
              for name, t in state.items()}
    return 8 + len(json.dumps(header)) + sum(t.numel() * t.element_size() for t in state.values())


def gb(n: int) -> str:
    return f"{n / GB:.2f}"


def table(configs: list[Path], k: int, folds: int) -> str:
    rows, finished, peak, kept_all = [], 0, 0, 0
    with tempfile.TemporaryDirectory() as architectures:
        for path in configs:
            cfg = load_config(path)
            sizes = experiment_sizes(cfg, Path(architectures))
            run_peak = (folds - 1) * sizes.kept(k, False) + sizes.fold_peak(k)
            peak = max(peak, finished + run_peak)  # experiments run one after another
            finished += folds * sizes.kept(k, False)
            kept_all += folds * sizes.kept(k, True)
            rows.append(f"| {cfg.name} | {sizes.params / 1e6:.1f} M / {sizes.trained_params / 1e6:.1f} M | "
                        f"{gb(sizes.bundle)} | {gb(sizes.trained)} | {gb(sizes.last)} | {gb(sizes.fold_peak(k))} | "
                        f"{gb(folds * sizes.kept(k, False))} | {gb(run_peak)} | {gb(folds * sizes.kept(k, True))} |")
    head = ["| experiment | parameters (all / trained) | bundle | top-k file | last.ckpt | fold in training, "
            "at most | run, kept | run, at most | run, keep_checkpoints |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total = (f"| **all {len(configs)}, one after another** | | | | | | **{gb(finished)}** | **{gb(peak)}** | "
             f"{gb(kept_all)} |")
    return "\n".join([*head, *rows, total])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path,
                        help=f"experiment YAMLs (default: the paper's 11 in {PAPER_CONFIG_DIR})")
    parser.add_argument("--top-k", type=int, default=5, help="train.top_k (default 5, the paper's)")
    parser.add_argument("--folds", type=int, default=FOLDS)
    args = parser.parse_args(argv)
    configs = args.configs or sorted(PAPER_CONFIG_DIR.glob("*.yaml"))
    print(f"GB = 10^9 bytes; float32; top {args.top_k}; {args.folds} folds; {NUM_CLASSES} classes. A fold in "
          "training also holds the bundles of the folds before it; a run = one experiment's folds.\n")
    print(table(configs, args.top_k, args.folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
