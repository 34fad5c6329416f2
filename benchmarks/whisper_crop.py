"""Whisper on short clips: padding every clip to 30 s (whisper_input=pad) vs. cropping to its length (crop).

Usage: python benchmarks/whisper_crop.py [--models tiny,base] [--clips 4] [--ravdess DIR|none] [--out FILE]

Whisper's encoder was trained on 30 s windows only. serkit's "pad" mode pads each clip to 30 s (exactly as
Whisper was trained) and keeps the real frames; "crop" runs the encoder on the clip's own frames (positional
embedding sliced, padding masked), so a 4 s clip costs ~4/30 of the attention and MLP work. This measures,
for the real Whisper encoders in ../shared/models (tiny.en, base; a model that is absent is skipped with a
note), the encoder time per clip in each mode (frozen upstream forward, batches of --batch-size clips) and
what cropping does to the features: the cosine similarity between pad and crop, per clip, of the
mean-pooled frames (last layer, and averaged over all layers) and frame by frame (last layer).
Clips: RAVDESS recordings (real speech, 3-5 s) when ../shared/data/ravdess is there, else synthetic
speech-like clips of 2-6 s.
What it does to accuracy on RAVDESS is measured in docs/results.md. The issue sets no goal for this one: it
is the evidence for choosing between the two modes.
"""

from __future__ import annotations

import sys

import numpy as np

import _common

MODELS = {"tiny": ("whisper tiny.en", _common.WHISPER_TINY), "base": ("whisper base", _common.WHISPER_BASE)}


def load_clips(args) -> tuple[list[np.ndarray], str]:
    """-> (clips [S_i] float32 16 kHz, a description)."""
    ravdess = _common.optional_dir(args.ravdess, _common.RAVDESS)
    if ravdess is not None:
        from serkit.data.audio import load_audio

        files = _common.ravdess_files(ravdess, args.clips)
        clips = [load_audio(path) for path in files]
        return clips, f"{len(clips)} RAVDESS recordings ({', '.join(p.name for p in files[:2])}, ...)"
    rng = np.random.default_rng(args.seed)
    clips = [_common.voice_like(s, args.seed * 1000 + i) for i, s in enumerate(rng.uniform(2, 6, args.clips))]
    return clips, f"{len(clips)} synthetic speech-like clips (no RAVDESS here)"


def encode(upstream, clips: list[np.ndarray], batch_size: int) -> list[list[np.ndarray]]:
    """Frozen upstream forward over the clips in batches -> per clip, per layer, its real frames [T, D]."""
    import torch

    from serkit.data.batch import pad_waves

    pooled = []
    with torch.inference_mode():
        for first in range(0, len(clips), batch_size):
            wavs, wav_lens = pad_waves([torch.from_numpy(c) for c in clips[first:first + batch_size]])
            hidden, frame_lens = upstream(wavs, wav_lens)
            for b, frames in enumerate(frame_lens.tolist()):
                pooled.append([layer[b, :frames].numpy() for layer in hidden])
    return pooled


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of the mean-pooled frames a [T, D] and b [T, D]."""
    a, b = a.mean(0), b.mean(0)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def frame_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the cosine similarity of frame t in a [T, D] and in b [T, D]."""
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def main() -> int:
    p = _common.parser(__doc__, repeats=3, warmup=0,
                       warmup_help="untimed passes per mode besides the first one (which gives the features compared)")
    p.add_argument("--models", default="tiny,base", help="which of tiny (tiny.en), base to measure")
    p.add_argument("--clips", type=int, default=4, help="number of clips")
    p.add_argument("--batch-size", type=int, default=4, help="clips per encoder call")
    p.add_argument("--ravdess", help="RAVDESS folder (default: ../shared/data/ravdess when present; 'none': synthetic)")
    args = p.parse_args()
    _common.setup(args)

    from serkit.upstream import build_upstream
    from serkit.upstream.whisper import WhisperConfig

    clips, clip_note = load_clips(args)
    seconds = [len(c) / _common.SAMPLE_RATE for c in clips]
    table = _common.Table(
        f"Whisper encoder on short clips: pad to 30 s vs crop ({clip_note}, {min(seconds):.1f}-{max(seconds):.1f} s)",
        ["encoder", "pad: s per clip (baseline)", "crop: s per clip", "speed-up (pad / crop)",
         "cosine pad vs crop, pooled last layer: median (min)", "pooled, mean over layers",
         "frame by frame, last layer",
         "goal"],
    )
    for key in [m.strip() for m in args.models.split(",") if m.strip()]:
        if key not in MODELS:
            sys.exit(f"--models: unknown {key!r}; expected tiny and/or base")
        name, directory = MODELS[key]
        if not directory.is_dir():
            table.notes.append(f"{name} skipped: {directory} is absent")
            continue
        upstreams = {mode: build_upstream(WhisperConfig(source=str(directory), freeze="all",
                                                         whisper_input=mode)) for mode in ("pad", "crop")}
        # the first pass is the warm-up, and gives the features compared below
        features = {mode: encode(upstream, clips, args.batch_size) for mode, upstream in upstreams.items()}
        last = [cosine(p_[-1], c[-1]) for p_, c in zip(features["pad"], features["crop"])]
        every = [np.mean([cosine(x, y) for x, y in zip(p_, c)]) for p_, c in zip(features["pad"], features["crop"])]
        frames = [frame_cosine(p_[-1], c[-1]) for p_, c in zip(features["pad"], features["crop"])]
        times = _common.time_sides({mode: (lambda u=u: encode(u, clips, args.batch_size))
                                    for mode, u in upstreams.items()}, args.repeats, args.warmup)
        pad, crop = (_common.median(times[mode]) / len(clips) for mode in ("pad", "crop"))
        table.add(f"{name} ({directory.name})", f"{pad:.3f}", f"{crop:.3f}", f"{pad / crop:.1f}x",
                  f"{np.median(last):.3f} ({min(last):.3f})", f"{np.median(every):.3f} ({min(every):.3f})",
                  f"{np.median(frames):.3f} ({min(frames):.3f})",
                  "none set (informative)")
    table.notes += [
        f"seconds per clip: the median of {args.repeats} passes over all clips (batches of {args.batch_size}), "
        "after one untimed pass, the two modes taking turns",
        "cosine similarity pad vs crop per clip (1.0 = same direction), median (min) over clips: of the mean over "
        "real frames (what mean pooling sees), and frame by frame (the mean over frames of each frame's cosine)",
        "accuracy with each mode on RAVDESS: docs/results.md",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
