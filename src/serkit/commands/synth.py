"""`serkit synth-iemocap`: write a synthetic corpus in IEMOCAP_full_release's layout (tests, demos, CI)."""

from __future__ import annotations

import argparse
import time

from .registry import command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="new or empty folder to write Session1..Session5 into")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--size", choices=("small", "medium"), default="small",
                        help="small: ~40 kept utterances per session (seconds); medium: ~150 per session")
    parser.add_argument("--superb-ids", metavar="DIR", default=None,
                        help="SUPERB split folder (SessionN/test_meta_data.json): write the real 5531 utterance "
                             "ids and labels with tiny clips instead of a random corpus (--size is ignored)")


@command("synth-iemocap", "write a synthetic IEMOCAP corpus (exact layout and file formats)", _add_arguments)
def run(args: argparse.Namespace) -> int:
    from serkit_synth.iemocap import build_superb_id_iemocap, build_synthetic_iemocap

    began = time.perf_counter()
    if args.superb_ids:
        report = build_superb_id_iemocap(args.out, args.superb_ids, seed=args.seed)
    else:
        report = build_synthetic_iemocap(args.out, seed=args.seed, size=args.size)
    print(f"{report.summary()} [{time.perf_counter() - began:.1f} s]")
    return 0
