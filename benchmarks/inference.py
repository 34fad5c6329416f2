"""Inference speed: `serkit predict` (EmotionRecognizer's batch path) vs. transformers' audio-classification pipeline.

Usage: python benchmarks/inference.py [--files 32] [--encoder tiny|small | --hf-model DIR] [--threads 1] [--out FILE]

One model on both sides. By default a tiny random wav2vec2 (serkit.upstream.tiny; --encoder small: a bigger
one) with a sequence classification head, saved as a Hugging Face `Wav2Vec2ForSequenceClassification`
folder; with --hf-model, a local *ForSequenceClassification folder of your own (wav2vec2 / HuBERT / WavLM /
data2vec-audio, without use_weighted_layer_sum). The HF head is: last hidden state -> projector (Linear
D->P) -> mean over frames -> classifier (Linear P->C). Both linear maps commute with the mean, so the serkit
bundle (hf upstream, layers last, frozen -> mean pooling -> Linear D->C) gets the one linear map
W = W_c W_p, b = W_c b_p + b_c: the same function. The script checks that both give the same probabilities
on every file before it times anything.

Timed: predicting every file, from file path to probabilities, the model already loaded. serkit: what
`serkit predict` runs (inference.runner.predict_files: files batched by length, at most --batch-seconds of
padded audio per batch: its CPU default 10 and its GPU default 60; one row each), on the bundle (PyTorch) and
on the same bundle exported by `serkit export --onnx` (`serkit predict model.onnx`: ONNX Runtime, CPU only,
as many threads as the other sides). Pipeline: each
file read with soundfile (the pipeline reads paths with an ffmpeg binary, which this machine lacks) and
given as {"raw", "sampling_rate"}, batch_size as the pipeline's default (1).
Files: synthetic speech-like 16 kHz wavs of 1 to 10 s (the issue's set), and a second set of short clips
(0.5 to 2 s; --short-files 0 leaves it out). Goal (issue 6): serkit >= 1.5x faster.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import _common
import torch

from serkit.inference.recognizer import default_batch_seconds

GOAL = 1.5
LABELS = ["neu", "hap", "ang", "sad"]
RUNTIMES = {"torch": "bundle (PyTorch)", "onnx": "model.onnx (ONNX Runtime)"}


def save_random_classifier(directory: Path, size: str, seed: int) -> Path:
    """A random wav2vec2 (serkit's tiny test stand-in, or a small one) + a random classification head, as an
    HF Wav2Vec2ForSequenceClassification folder."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    encoder_dir = _common.save_speech_model(directory / "encoder", "wav2vec2", size, seed)
    torch.manual_seed(seed)
    model = Wav2Vec2ForSequenceClassification.from_pretrained(
        encoder_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    out = directory / "hf_classifier"
    model.save_pretrained(out)
    Wav2Vec2FeatureExtractor.from_pretrained(encoder_dir).save_pretrained(out)
    return out


def equivalent_bundle(hf_dir: Path, bundle_dir: Path, upstream: dict | None = None) -> tuple[Path, list[str]]:
    """A serkit bundle computing the same function as the HF classifier in hf_dir -> (bundle, labels).
    upstream: the bundle's upstream config (default: the "hf" upstream on hf_dir, last layer, frozen;
    benchmarks/inference_real.py gives a "whisper" one)."""
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
        upstream or {"name": "hf", "source": str(hf_dir), "layers": "last", "freeze": "all"}))
    model = build_model(cfg.model, num_classes=len(labels))  # the encoder weights come from hf_dir
    with torch.no_grad():
        model.classifier.linear.weight.copy_(classifier.weight @ projector.weight)
        model.classifier.linear.bias.copy_(classifier.weight @ projector.bias + classifier.bias)
    bundle = save_bundle(bundle_dir, model, cfg, labels, metrics={"note": f"benchmark: same function as {hf_dir}"})
    return bundle, labels


def main() -> int:
    p = _common.parser(__doc__, repeats=7, warmup=1)
    p.add_argument("--files", type=int, default=32, help="number of synthetic wav files (the issue's set)")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--short-files", type=int, default=64,
                   help="a second set of this many short clips (0.5-2 s), where per-file overhead weighs most; 0: off")
    p.add_argument("--hf-model", type=Path,
                   help="a local *ForSequenceClassification folder (with preprocessor_config.json) instead of a "
                        "random one")
    p.add_argument("--encoder", default="tiny", choices=_common.ENCODER_SIZES,
                   help="size of the random wav2vec2 (without --hf-model): serkit's tiny stand-in or a small one")
    p.add_argument("--device", default="cpu", help="torch device for both sides (cpu, cuda, ...)")
    p.add_argument("--pipeline-batch-size", type=int, default=1, help="the pipeline's batch_size (its default: 1)")
    p.add_argument("--batch-seconds", default="10,60",
                   help="serkit predict --batch-seconds values to time, comma-separated (10: its CPU default, 60: "
                        "its GPU default; one row each)")
    p.add_argument("--runtimes", default="torch,onnx",
                   help="serkit sides, comma-separated: torch (the bundle), onnx (its ONNX export; CPU only)")
    args = p.parse_args()
    _common.setup(args)
    budgets = [float(b) for b in args.batch_seconds.split(",") if b.strip()]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if not runtimes or set(runtimes) - set(RUNTIMES):
        sys.exit(f"--runtimes: expected some of {', '.join(RUNTIMES)}, got {args.runtimes!r}")
    if "onnx" in runtimes and args.device != "cpu":
        sys.exit("--runtimes onnx runs on the CPU only: add --runtimes torch for --device cuda")

    from transformers import pipeline

    from serkit.inference import EmotionRecognizer

    if args.hf_model:
        model_name = str(args.hf_model)
    else:
        model_name = _common.encoder_description("wav2vec2", args.encoder) + " + HF head"
    table = _common.Table(
        f"Inference: {model_name}",
        ["files", "transformers pipeline (baseline), s", "serkit predict MODEL", "--batch-seconds",
         "serkit predict, s", "speed-up (baseline / serkit)", "goal", "met"],
    )
    sets = [(args.files, args.min_seconds, args.max_seconds)]
    if args.short_files:
        sets.append((args.short_files, 0.5, 2.0))
    with tempfile.TemporaryDirectory(prefix="serkit_bench_inference_") as tmp:
        tmp = Path(tmp)
        hf_dir = args.hf_model or save_random_classifier(tmp, args.encoder, args.seed)
        bundle, labels = equivalent_bundle(hf_dir, tmp / "bundle")
        recognizers = {"torch": EmotionRecognizer.load(bundle, device=args.device)}
        if "onnx" in runtimes:
            from serkit.export import export_onnx

            exported = export_onnx(bundle, tmp / "model.onnx")
            recognizers["onnx"] = EmotionRecognizer.load(exported.path, threads=args.threads)
        recognizers = {runtime: recognizers[runtime] for runtime in runtimes}
        classify = pipeline("audio-classification", model=str(hf_dir), device=args.device,
                            batch_size=args.pipeline_batch_size)
        for index, (count, low, high) in enumerate(sets):
            seconds = np.random.default_rng([args.seed, index]).uniform(low, high, count)
            paths = [str(path) for path in _common.write_clips(tmp / f"clips_{index}", seconds, args.seed + index)]
            times, max_diff = compare(classify, recognizers, labels, paths, budgets, args)
            base = _common.median(times["pipeline"])
            audio = float(seconds.sum())
            name = f"{count} x {low:g}-{high:g} s ({audio:.0f} s of audio)" + (" (issue's set)" if index == 0 else "")
            default = default_batch_seconds(torch.device(args.device))
            for runtime in recognizers:
                for budget in budgets:
                    ours = _common.median(times[runtime, budget])
                    shown = f"{budget:g}" + (" (default)" if budget == default else "")
                    table.add(name, _common.spread(times["pipeline"]), RUNTIMES[runtime], shown,
                              _common.spread(times[runtime, budget]), f"{base / ours:.2f}x", f">= {GOAL}x",
                              _common.verdict(base / ours >= GOAL))
            table.notes.append(f"{count} x {low:g}-{high:g} s: same probabilities on every file before timing "
                               f"(max |difference| {max_diff:.1e}); pipeline {audio / base:.0f}x real time")
    table.notes += [
        f"seconds per pass over all files, model loaded: median (min-max) of {args.repeats} runs after "
        f"{args.warmup} warm-up, the sides taking turns; pipeline batch_size={args.pipeline_batch_size}; "
        f"device {args.device}",
    ]
    _common.emit([table], args)
    return 0


def compare(classify, recognizers: dict, labels: list[str], paths: list[str], budgets: list[float],
            args) -> tuple[dict, float]:
    """Check that every side gives the pipeline's probabilities on every file, then time the pipeline and serkit
    (each runtime at each batch budget) -> ({"pipeline" or (runtime, budget): seconds per run}, max difference)."""
    import soundfile as sf

    from serkit.inference.runner import predict_files

    def run_pipeline():
        inputs = []
        for path in paths:
            samples, rate = sf.read(path, dtype="float32")
            inputs.append({"raw": samples, "sampling_rate": rate})
        return classify(inputs, top_k=None)

    def run_serkit(runtime: str, budget: float):
        return list(predict_files(recognizers[runtime], paths, batch_seconds=budget))

    theirs = [{row["label"]: row["score"] for row in rows} for rows in run_pipeline()]
    max_diff = 0.0
    sides = {"pipeline": run_pipeline}
    for runtime in recognizers:
        for budget in budgets:
            ours = [prediction.probabilities for prediction in run_serkit(runtime, budget)]
            max_diff = max(max_diff, *(abs(a[label] - b[label]) for a, b in zip(theirs, ours) for label in labels))
            sides[runtime, budget] = lambda r=runtime, b=budget: run_serkit(r, b)
    if max_diff > 1e-4:
        sys.exit(f"the sides disagree (max probability difference {max_diff:.2e}): not the same model")
    return _common.time_sides(sides, args.repeats, args.warmup), max_diff


if __name__ == "__main__":
    sys.exit(main())
