"""Build `src/serkit/data/resources/superb_iemocap_split.json.gz` from SUPERB's IEMOCAP fold lists.

    python scripts/build_superb_split.py [SUPERB_DIR] [--out FILE]

SUPERB_DIR holds `SessionN/{test,train}_meta_data.json` as shipped in s3prl `downstream/emotion/meta_data/`
(default: ../shared/data/superb_iemocap_split next to the repository). The script checks what the loader relies
on (each train list = the other sessions' test lists joined in ascending order; the README's counts), then runs
s3prl's own recipe — `torch.manual_seed(0)` then `random_split(dataset, [int((1 - 0.2) * n), rest])` with the
default generator — and stores the resulting index lists, so the split no longer depends on torch's RNG at load.
Output (gzip of JSON, no timestamp so rebuilding gives the same bytes):

    {"source": ..., "torch": "<version used>", "labels": ["neu", "hap", "ang", "sad"],
     "sessions": {"1": [[utterance id, label], ...], ...},          # SUPERB's order inside each session
     "folds": {"1": {"train": [i, ...], "valid": [i, ...]}, ...}}    # indices into that fold's train list
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import random_split

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "superb_iemocap_split"
DEFAULT_OUT = REPO / "src" / "serkit" / "data" / "resources" / "superb_iemocap_split.json.gz"
VALID_RATIO = 0.2  # s3prl downstream/emotion/config.yaml: datarc.valid_ratio

# README table: fold -> (test, train, valid)
EXPECTED = {1: (1085, 3556, 890), 2: (1023, 3606, 902), 3: (1151, 3504, 876), 4: (1031, 3600, 900),
            5: (1241, 3432, 858)}


def read_list(path: Path) -> list[tuple[str, str]]:
    meta = json.loads(path.read_text())
    rows = []
    for entry in meta["meta_data"]:
        utt_id = Path(entry["path"]).stem
        rows.append((utt_id, entry["label"]))
    return rows


def s3prl_split(dataset: list) -> tuple[list[int], list[int]]:
    """Exactly what s3prl's emotion expert does with its train_meta_data list."""
    trainlen = int((1 - VALID_RATIO) * len(dataset))
    torch.manual_seed(0)
    train, dev = random_split(dataset, [trainlen, len(dataset) - trainlen])
    return list(train.indices), list(dev.indices)


def build(src: Path) -> dict:
    sessions = {s: read_list(src / f"Session{s}" / "test_meta_data.json") for s in range(1, 6)}
    all_ids = [utt_id for rows in sessions.values() for utt_id, _ in rows]
    if len(all_ids) != len(set(all_ids)) or len(all_ids) != 5531:
        sys.exit(f"expected 5531 distinct utterances, got {len(all_ids)} ({len(set(all_ids))} distinct)")
    for s, rows in sessions.items():
        if any(not utt_id.startswith(f"Ses0{s}") for utt_id, _ in rows):
            sys.exit(f"Session{s}/test_meta_data.json lists utterances of another session")
    folds = {}
    for fold in range(1, 6):
        train_list = read_list(src / f"Session{fold}" / "train_meta_data.json")
        joined = [row for s in range(1, 6) if s != fold for row in sessions[s]]
        if train_list != joined:
            sys.exit(f"Session{fold}/train_meta_data.json is not the other sessions' test lists joined in order")
        train, valid = s3prl_split(train_list)
        # The loader draws with a private generator; it must agree with the freshly seeded global one.
        check = random_split(train_list, [len(train), len(valid)], generator=torch.Generator().manual_seed(0))
        if list(check[0].indices) != train or list(check[1].indices) != valid:
            sys.exit("random_split with Generator().manual_seed(0) differs from torch.manual_seed(0)")
        got = (len(sessions[fold]), len(train), len(valid))
        if got != EXPECTED[fold]:
            sys.exit(f"fold {fold}: test/train/valid = {got}, README says {EXPECTED[fold]}")
        folds[str(fold)] = {"train": train, "valid": valid}
    counts = Counter(label for rows in sessions.values() for _, label in rows)
    print(f"5531 utterances: {dict(counts)}; folds (test, train, valid): {EXPECTED}")
    return {
        "source": "SUPERB / s3prl downstream/emotion/meta_data, SessionN/{test,train}_meta_data.json",
        "rule": "torch.manual_seed(0); random_split(train_meta_data, [int((1 - 0.2) * n), n - int((1 - 0.2) * n)])",
        "torch": torch.__version__.split("+")[0],
        "labels": ["neu", "hap", "ang", "sad"],
        "sessions": {str(s): [list(row) for row in rows] for s, rows in sessions.items()},
        "folds": folds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", nargs="?", type=Path, default=DEFAULT_SRC, help="folder with SessionN/*.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = build(args.src)
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    args.out.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
