"""Inference speed: `serkit predict` (EmotionRecognizer's batch path) vs. transformers' audio-classification pipeline.

Usage: python benchmarks/inference.py [--files 32] [--hf-model DIR] [--threads 1] [--out FILE]

One model on both sides. By default a tiny random wav2vec2 (serkit.upstream.tiny) with a sequence
classification head, saved as a Hugging Face `Wav2Vec2ForSequenceClassification` folder; with --hf-model, a
local *ForSequenceClassification folder of your own (wav2vec2 / HuBERT / WavLM / data2vec-audio, without
use_weighted_layer_sum). The HF head is: last hidden state -> projector (Linear D->P) -> mean over frames ->
classifier (Linear P->C). Both linear maps commute with the mean, so the serkit bundle (hf upstream, layers
last, frozen -> mean pooling -> Linear D->C) gets the one linear map W = W_c W_p, b = W_c b_p + b_c: the same
function. The script checks that both give the same probabilities on every file before it times anything.

Timed: predicting every file, from file path to probabilities, the model already loaded. serkit: what
`serkit predict` runs (inference.runner.predict_files: files batched by length, 60 s of padded audio per
batch by default). Pipeline: each file read with soundfile (the pipeline reads paths with an ffmpeg binary,
which this machine lacks) and given as {"raw", "sampling_rate"}, batch_size as the pipeline's default (1).
Files: synthetic speech-like 16 kHz wavs of 1 to 10 s (the issue's set), and a second set of short clips
(0.5 to 2 s; --short-files 0 leaves it out). Goal (issue 6): serkit >= 1.5x faster.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import _common

GOAL = 1.5
LABELS = ["neu", "hap", "ang", "sad"]


def save_tiny_classifier(directory: Path, seed: int) -> Path:
    """A tiny random wav2vec2 (serkit's test stand-in) + a random classification head, as an HF folder."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    import torch
    from serkit.upstream.tiny import save_tiny_speech_model

    encoder_dir = save_tiny_speech_model(directory / "encoder", "wav2vec2", seed=seed)
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification.from_pretrained(
        encoder_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    out = directory / "hf_classifier"
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor.from_pretrained(encoder_dir).save_pretrained(out)
    return out


def equivalent_bundle(hf_dir: Path, bundle_dir: Path) -> tuple[Path, list[str]]:
    """A serkit bundle computing the same function as the HF classifier in hf_dir -> (bundle, labels)."""
    import torch
    from transformers import AutoConfig, AutoModelForAudioClassification

    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model

    config = AutoConfig.from_pretrained(hf_dir)
    if getattr(config, "use_weighted_layer_sum", False):
        sys.exit(f"{hf_dir}: use_weighted_layer_sum=true is not supported here (its layer mix is taken before the "
                 "final layer norm, serkit's 'weighted' after it); use a model with use_weighted_layer_sum=false")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    hf = AutoModelForAudioClassification.from_pretrained(hf_dir)
    projector, classifier = hf.projector, hf.classifier
    cfg = load_config(_common.tiny_bundle_config(
        {"name": "hf", "source": str(hf_dir), "layers": "last", "freeze": "all"}))
    model = build_model(cfg.model, num_classes=len(labels))  # the encoder weights come from hf_dir
    with torch.no_grad():
        model.classifier.linear.weight.copy_(classifier.weight @ projector.weight)
        model.classifier.linear.bias.copy_(classifier.weight @ projector.bias + classifier.bias)
    return save_bundle(bundle_dir, model, cfg, labels, metrics={"note": "benchmark: same function as " + str(hf_dir)}), labels


def main() -> int:
    p = _common.parser(__doc__, repeats=5, warmup=1)
    p.add_argument("--files", type=int, default=32, help="number of synthetic wav files (the issue's set)")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--short-files", type=int, default=64,
                   help="a second set of this many short clips (0.5-2 s), where per-file overhead weighs most; 0: off")
    p.add_argument("--hf-model", type=Path,
                   help="a local *ForSequenceClassification folder (with preprocessor_config.json) instead of the tiny one")
    p.add_argument("--pipeline-batch-size", type=int, default=1, help="the pipeline's batch_size (its default: 1)")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="serkit predict --batch-seconds")
    args = p.parse_args()
    _common.setup(args)

    from transformers import pipeline

    from serkit.inference import EmotionRecognizer

    model_name = str(args.hf_model) if args.hf_model else "tiny random wav2vec2 (hidden 32, 2 layers) + HF head"
    table = _common.Table(
        f"Inference: {model_name}",
        ["files", "transformers pipeline (baseline), s", "serkit predict, s", "speed-up (baseline / serkit)",
         "goal", "met"],
    )
    sets = [(args.files, args.min_seconds, args.max_seconds)]
    if args.short_files:
        sets.append((args.short_files, 0.5, 2.0))
    with tempfile.TemporaryDirectory(prefix="serkit_bench_inference_") as tmp:
        tmp = Path(tmp)
        hf_dir = args.hf_model or save_tiny_classifier(tmp, args.seed)
        bundle, labels = equivalent_bundle(hf_dir, tmp / "bundle")
        recognizer = EmotionRecognizer.load(bundle, batch_seconds=args.batch_seconds)
        classify = pipeline("audio-classification", model=str(hf_dir), device="cpu",
                            batch_size=args.pipeline_batch_size)
        for index, (count, low, high) in enumerate(sets):
            seconds = np.random.default_rng([args.seed, index]).uniform(low, high, count)
            paths = [str(path) for path in _common.write_clips(tmp / f"clips_{index}", seconds, args.seed + index)]
            times, max_diff = compare(classify, recognizer, labels, paths, args)
            base, ours = _common.median(times["pipeline"]), _common.median(times["serkit"])
            audio = float(seconds.sum())
            table.add(f"{count} x {low:g}-{high:g} s ({audio:.0f} s of audio)" + (" (issue's set)" if index == 0 else ""),
                      _common.spread(times["pipeline"]), _common.spread(times["serkit"]), f"{base / ours:.2f}x",
                      f">= {GOAL}x", _common.verdict(base / ours >= GOAL))
            table.notes.append(f"{count} x {low:g}-{high:g} s: same probabilities on every file before timing "
                               f"(max |difference| {max_diff:.1e}); pipeline {audio / base:.0f}x real time, "
                               f"serkit {audio / ours:.0f}x real time")
    table.notes += [
        f"seconds per pass over all files, model loaded: median (min-max) of {args.repeats} runs after "
        f"{args.warmup} warm-up, the two sides taking turns",
        f"pipeline batch_size={args.pipeline_batch_size}; serkit --batch-seconds {args.batch_seconds:g}",
    ]
    _common.emit([table], args)
    return 0


def compare(classify, recognizer, labels: list[str], paths: list[str], args) -> tuple[dict, float]:
    """Check that both sides give the same probabilities on every file, then time them -> (times, max diff)."""
    import soundfile as sf

    from serkit.inference.runner import predict_files

    def run_pipeline():
        inputs = []
        for path in paths:
            samples, rate = sf.read(path, dtype="float32")
            inputs.append({"raw": samples, "sampling_rate": rate})
        return classify(inputs, top_k=None)

    def run_serkit():
        return list(predict_files(recognizer, paths))

    theirs = [{row["label"]: row["score"] for row in rows} for rows in run_pipeline()]
    ours = [prediction.probabilities for prediction in run_serkit()]
    max_diff = max(abs(a[label] - b[label]) for a, b in zip(theirs, ours) for label in labels)
    if max_diff > 1e-4:
        sys.exit(f"the two sides disagree (max probability difference {max_diff:.2e}): not the same model")
    return _common.time_sides({"pipeline": run_pipeline, "serkit": run_serkit}, args.repeats, args.warmup), max_diff


if __name__ == "__main__":
    sys.exit(main())
