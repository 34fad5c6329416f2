"""`serkit baseline SYSTEM --corpus CORPUS --root DIR [--labels a,b,c] [--option K=V] [--folds 1,2] [--c 0.1,1]
[--out DIR]`: a baseline on the corpus's own folds (the folds and test sets `serkit cv` uses).

- `opensmile-svm [--features FILE] [--speaker-norm]`: openSMILE eGeMAPSv02 + linear SVM (needs
  `pip install serkit[baseline]`);
- `probe --encoder SOURCE [--upstream hf|whisper] [--whisper-input pad|crop] [--pooling mean|stats] [--refit]
  [--speaker-norm] [--wave-variants K [--wave-speed LO,HI] [--wave-gain-db LO,HI] [--wave-noise-snr-db LO,HI]]
  [--cache DIR | --no-cache]`: the linear probe of a frozen encoder (every layer pooled, logistic regression;
  layer and C chosen on validation; --refit: trained again on training + validation actors before the test;
  --speaker-norm (both systems): each speaker's features standardised by their own statistics over their
  clips before the classifier, a transductive protocol (data/speaker_norm.py);
  --wave-variants: K fixed speed/gain/noise copies of each training clip added as training rows, the copies
  `train.augment.wave_variants` trains on), reading and filling the same feature cache as `serkit cv`."""

from __future__ import annotations

import argparse

from .parsing import add_corpus_arguments
from .registry import command

SYSTEMS = ("opensmile-svm", "probe")
DEFAULT_CACHE = "runs/feature_cache"  # the RAVDESS configs' train.feature_cache
WAVE_RANGES = ("speed", "gain-db", "noise-snr-db")  # --wave-<flag>; defaults: data/wave_copies.py DEFAULTS


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("system", choices=SYSTEMS, help="which baseline")
    p.add_argument("--corpus", required=True, help="corpus registry key (ravdess, iemocap, manifest)")
    add_corpus_arguments(p)
    p.add_argument("--folds", help="comma-separated folds to run (default: all)")
    p.add_argument("--c", help="comma-separated grid of C values (default: 1e-4,1e-3,1e-2,0.1,1,10)")
    p.add_argument("--out", help="output folder (default: runs/baseline_<system>_<corpus>; the probe's adds the "
                                 "encoder's name, the pooling, _refit and _waveK with any non-default ranges, so its "
                                 "variants never share a folder)")
    p.add_argument("--features", help="opensmile-svm: feature cache file (.npz) to read and extend "
                                      "(default: OUT/egemaps.npz)")
    p.add_argument("--encoder", help="probe: the frozen encoder (preset, hub id or local folder)")
    p.add_argument("--upstream", default="hf", help="probe: upstream registry key (default hf; a Whisper source "
                                                     "is recognised either way)")
    p.add_argument("--whisper-input", default="pad", choices=("pad", "crop"), help="probe: Whisper input mode")
    p.add_argument("--pooling", default="mean", choices=("mean", "stats"),
                   help="probe: pool each layer's frames by their mean (default, as SUPERB and EmoBox) or mean + std")
    p.add_argument("--refit", action="store_true", help="probe: train the chosen layer view and C again on the "
                                                         "training and validation actors together before testing")
    p.add_argument("--speaker-norm", action="store_true",
                   help="both: standardise each speaker's features by that speaker's own mean and std over "
                        "their clips (test speakers' too, no labels read: a transductive protocol)")
    p.add_argument("--wave-variants", type=int, default=0,
                   help="probe: add K fixed speed/gain/noise copies of each training clip as training rows (default 0)")
    from ..data.wave_copies import DEFAULTS

    for flag in WAVE_RANGES:
        default = DEFAULTS[flag.replace("-", "_")]
        p.add_argument(f"--wave-{flag}", help=f"probe: LOW,HIGH range of the copies' {flag.replace('-', ' ')} "
                                             f"(default {','.join(f'{v:g}' for v in default) if default else 'none'}"
                                             ", as train.augment)")
    p.add_argument("--cache", default=DEFAULT_CACHE, help=f"probe: feature cache folder (default {DEFAULT_CACHE})")
    p.add_argument("--no-cache", action="store_true", help="probe: encode without the feature cache")
    p.add_argument("--quiet", action="store_true", help="probe: no progress lines on stderr while encoding")


@command("baseline", "baselines on a corpus's folds: openSMILE eGeMAPS + linear SVM, or a frozen encoder's "
                     "linear probe", _arguments)
def run(args: argparse.Namespace) -> int:
    from ..baselines.folds import C_GRID
    from ..errors import ConfigError
    from .data import data_config
    from .parsing import parse_numbers

    folds = parse_numbers(args.folds, "--folds")
    c_grid = parse_numbers(args.c, "--c", float) or C_GRID
    if any(not c > 0 for c in c_grid):  # before any encoding: the probe's first fold may take minutes to encode
        raise ConfigError(f"--c: expected positive numbers, got {list(c_grid)}")
    out = args.out or _default_out(args)
    data = data_config(args.corpus, args.root, args.labels, args.label_map, args.option)
    if args.system == "probe":
        from ..baselines.probe import run_probe
        from ..upstream import upstream_config

        if not args.encoder:
            raise ConfigError("baseline probe: --encoder is required (a preset, hub id or local folder)")
        whisper_input = {"whisper_input": args.whisper_input} if args.upstream == "whisper" or \
            args.whisper_input != "pad" else {}  # Whisper's own key: refused, naming it, for another upstream
        upstream_cfg = upstream_config({"name": args.upstream, "source": args.encoder, "layers": "weighted",
                                        "freeze": "all", **whisper_input}, "upstream")
        summary, fits = run_probe(data, out, upstream_cfg, folds, c_grid, None if args.no_cache else args.cache,
                                  progress=not args.quiet, pooling=args.pooling, refit=args.refit,
                                  wave=_wave_copies(args), speaker_norm=args.speaker_norm)
        chosen = "layer view and C chosen per fold: " + ", ".join(f"{f.fold}: {f.view} C={f.c:g}" for f in fits)
    else:
        from ..baselines.opensmile_svm import run_opensmile_svm

        wave = args.wave_variants or any(getattr(args, f"wave_{f.replace('-', '_')}") for f in WAVE_RANGES)
        if args.refit or args.pooling != "mean" or wave:  # the probe's options: silently ignored, they would mislead
            raise ConfigError("--refit, --pooling and --wave-* apply to the probe; opensmile-svm has none of them")

        summary, fits = run_opensmile_svm(data, out, folds, c_grid, args.features, speaker_norm=args.speaker_norm)
        chosen = "C chosen per fold: " + ", ".join(f"{f.fold}: {f.c:g}" for f in fits)
    print(f"{summary.to_markdown()}\n{chosen}\nreport: {out}")
    return 0


def _wave_copies(args: argparse.Namespace):
    """The probe's --wave-* flags -> WaveCopies, checked as train.augment is (the errors name the flags)."""
    from ..data.wave_copies import WaveCopies, check_wave_copies
    from .parsing import parse_numbers

    fields = {**WaveCopies().__dict__, "variants": args.wave_variants}
    for flag in WAVE_RANGES:
        text = getattr(args, f"wave_{flag.replace('-', '_')}")
        if text is not None:
            fields[flag.replace("-", "_")] = parse_numbers(text, f"--wave-{flag}", float)
    check_wave_copies(**fields, name=lambda key: f"--wave-{key.replace('_', '-')}")
    return WaveCopies(**fields)


def _default_out(args: argparse.Namespace) -> str:
    out = f"runs/baseline_{args.system.replace('-', '_')}_{args.corpus}"
    spknorm = "_spknorm" if args.speaker_norm else ""
    if args.system != "probe" or not args.encoder:
        return out + spknorm
    import re

    encoder = re.sub(r"[^A-Za-z0-9._-]+", "_", args.encoder.rstrip("/").split("/")[-1])  # a folder's or hub id's name
    wave = ""
    if args.wave_variants:  # the copies' ranges too, unless the defaults: other copies, another folder
        from ..data.wave_copies import is_default

        copies = _wave_copies(args)
        ranges = {flag: getattr(copies, flag.replace("-", "_")) for flag in WAVE_RANGES}
        wave = f"_wave{copies.variants}" + "".join(f"_{flag}{bounds[0]:g}_{bounds[1]:g}"
                                                   for flag, bounds in ranges.items()
                                                   if not is_default(flag.replace("-", "_"), bounds))
    return f"{out}_{encoder}_{args.pooling}{spknorm}{'_refit' if args.refit else ''}{wave}"
