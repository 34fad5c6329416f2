"""A study, not a serkit system: why serkit's trained head lags the probe trained on the wave copies.

The head and the probe see the same frozen frames; the probe fits a logistic regression to each layer's pooled
statistics, with the clips' fixed wave copies as extra rows, and validation chooses its layer view and C. This
script trains heads by SGD on those very pooled rows, in memory (a 6-fold run takes 1-3 min of one core, where
`serkit cv` takes 25-70 min), so one recipe change at a time can be measured against the probe on the same rows:

    # each layer's mean and std of every clip and of its K wave copies, read from serkit's feature cache
    python scripts/pooled_head_study.py extract --root ../shared/data/ravdess --option folds=emobox \\
        --encoder ../shared/models/whisper-base-encoder --cache runs/feature_cache --copies 2 --out POOLED.npz
    # the head: softmax layer weights -> batch norm -> dropout -> linear; AdamW, label smoothing, mixup; top-5
    # epochs by validation UA averaged, as serkit's head
    python scripts/pooled_head_study.py head POOLED.npz --copies 2 --mode one --epochs 75

`--mode one`: each epoch deals every training clip once, as itself or one of its copies (serkit cv's
`train.augment.wave_variants`); `all`: every clip and every copy each epoch (the probe's rows).
Head shapes serkit does not have, to screen before building them: `--hidden N` (an MLP with one hidden layer)
and `--layers concat` (the layers side by side instead of weighted).
What it differs in from serkit's head, so its figures are a guide: statistics are pooled per layer before the
layer weights (serkit weights layer-normalised frames, then pools); no frame masks; batches of a fixed 16 clips
(serkit: up to 60 s of audio); by default PyTorch's OneCycleLR (linear, 10 % warm-up from lr/25, AdamW's beta1
cycled 0.95-0.85) where serkit warms up linearly and decays to 0 with beta1 0.9 (`--schedule serkit`: serkit's
own). Results: docs/results.md.
"""

from __future__ import annotations

import argparse
import copy
import sys

import numpy as np
import torch

from serkit.evaluation.metrics import compute_metrics  # serkit's UA: the study and `serkit cv` score alike

PARTS = ("train", "valid", "test")


def extract(root: str, encoder: str, cache: str, copies: int, out: str, options: list[str]) -> dict:
    """Writes `out` (.npz): "plain" and "copy1".."copyK" [N, L, 2 D] float32 (each layer's mean then std over the
    real frames, serkit's probe's "stats" pooling), "ids", "labels", "speakers", "classes", and per fold k
    "f<k>_<part>" (utterance ids). Every copy is made for every clip (each clip trains in some fold)."""
    from serkit.baselines.folds import BaselineFolds
    from serkit.baselines.probe import pooled_layers
    from serkit.commands.data import data_config
    from serkit.data.wave_copies import WaveCopies
    from serkit.upstream import upstream_config

    data = BaselineFolds(data_config("ravdess", root, options=options))
    upstream = upstream_config({"name": "hf", "source": encoder, "layers": "weighted", "freeze": "all"}, "upstream")
    wave = WaveCopies(variants=copies)
    arrays = {"plain": pooled_layers(data.utterances, upstream, cache, pooling="stats", progress=True)}
    for k in range(1, copies + 1):
        arrays[f"copy{k}"] = pooled_layers(data.utterances, upstream, cache, pooling="stats", progress=True,
                                           transform=lambda wav, utt, k=k: wave.make(wav, utt.id, k))
    for fold in data.folds:
        arrays.update({f"f{fold}_{part}": np.array(ids) for part, ids in data.part_ids(fold).items()})
    np.savez(out, ids=np.array([u.id for u in data.utterances]), labels=np.array([u.label for u in data.utterances]),
             speakers=np.array([u.speaker for u in data.utterances]),
             classes=np.array(data.classes), **arrays)
    return arrays


def epoch_rows(num_clips: int, versions: int, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Rows of one epoch into the stacked training rows [versions * num_clips] (version v of clip i at
    v * num_clips + i), shuffled. mode "one": each clip once, in a version drawn uniformly; "all": every row."""
    if mode == "all":
        return torch.randperm(versions * num_clips, generator=generator)
    if mode != "one":
        raise ValueError(f"mode {mode!r}: expected 'one' or 'all'")
    clips = torch.randperm(num_clips, generator=generator)
    return clips + num_clips * torch.randint(0, versions, (num_clips,), generator=generator)


class PooledHead(torch.nn.Module):
    """[B, L, F] pooled layers -> logits [B, K]. layers "weighted": softmax layer weights (zero init: the mean of
    the layers) -> [B, F]; "concat": the layers side by side -> [B, L F]. Then batch norm without affine (serkit's
    `classifier.norm`), dropout, and a linear layer (hidden 0, serkit's head) or an MLP (Linear(., hidden), GELU,
    dropout, Linear(hidden, K))."""

    def __init__(self, num_layers: int, dim: int, num_classes: int, dropout: float, hidden: int = 0,
                 layers: str = "weighted"):
        super().__init__()
        if layers not in ("weighted", "concat"):
            raise ValueError(f"layers {layers!r}: expected 'weighted' or 'concat'")
        self.layers = layers
        self.weights = torch.nn.Parameter(torch.zeros(num_layers), requires_grad=layers == "weighted")
        width = dim if layers == "weighted" else num_layers * dim
        self.norm = torch.nn.BatchNorm1d(width, affine=False)
        self.dropout = torch.nn.Dropout(dropout)
        self.linear = (torch.nn.Linear(width, num_classes) if hidden == 0 else torch.nn.Sequential(
            torch.nn.Linear(width, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, num_classes)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.layers == "concat":
            return x.flatten(1)
        return torch.einsum("l,blf->bf", torch.softmax(self.weights, 0), x)

    def forward(self, x: torch.Tensor, mix: tuple[torch.Tensor, float] | None = None) -> torch.Tensor:
        """mix: (partner rows [B], lambda): mixup of the embeddings before the norm."""
        e = self.embed(x)
        if mix is not None:
            e = mix[1] * e + (1 - mix[1]) * e[mix[0]]
        return self.linear(self.dropout(self.norm(e)))


def make_schedule(optimiser: torch.optim.Optimizer, lr: float, steps: int, schedule: str):
    """"onecycle": PyTorch's OneCycleLR (linear, 10 % warm-up from lr/25, beta1 cycled 0.95-0.85); "serkit":
    serkit's own, a LambdaLR of `warmup_linear_decay` (10 % linear warm-up from lr/warm-up steps, then linear
    decay to 0; beta1 stays AdamW's 0.9), as `serkit cv` builds it (training/module.py)."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps, pct_start=0.1,
                                                   anneal_strategy="linear")
    if schedule == "serkit":
        from serkit.train_config import TrainConfig
        from serkit.training.schedule import warmup_linear_decay

        warmup = int(round(TrainConfig.warmup * steps))  # serkit's default warm-up fraction, rounded as cv does
        return torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: warmup_linear_decay(step, steps, warmup))
    raise ValueError(f"schedule {schedule!r}: expected 'onecycle' or 'serkit'")


def train_head(train: list[np.ndarray], train_y: np.ndarray, valid: np.ndarray, valid_y: np.ndarray,
               test: np.ndarray, test_y: np.ndarray, num_classes: int, *, mode: str = "one", epochs: int = 25,
               lr: float = 1e-3, weight_decay: float = 1e-2, batch: int = 16, dropout: float = 0.3,
               smoothing: float = 0.1, mixup: float = 0.4, top_k: int = 5, seed: int = 0, hidden: int = 0,
               layers: str = "weighted", schedule: str = "onecycle") -> dict:
    """train: the versions of the training clips (plain first, then each copy), each [N, L, F], labels train_y
    [N]; valid/test [M, L, F] plain. -> {"valid", "test": UA of the top-k average, "epochs": the chosen ones,
    "history": validation UA of every epoch, "final_lr", "layer_weights"}. Validation alone chooses the epochs;
    test is scored once, at the end."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    mix_rng = np.random.default_rng(seed)
    rows = torch.from_numpy(np.concatenate(train)).float()
    targets = torch.from_numpy(np.tile(train_y, len(train)))
    head = PooledHead(rows.shape[1], rows.shape[2], num_classes, dropout, hidden, layers)
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = len(train_y) if mode == "one" else len(targets)
    steps = epochs * -(-per_epoch // batch)
    scheduler = make_schedule(optimiser, lr, steps, schedule)
    valid_x, test_x = torch.from_numpy(valid).float(), torch.from_numpy(test).float()

    def score(x, y):
        head.eval()
        with torch.no_grad():
            return 100.0 * compute_metrics(head(x).argmax(1).numpy(), y, [str(c) for c in range(num_classes)]).ua

    kept = []  # (valid UA, epoch, state)
    for epoch in range(epochs):
        order = epoch_rows(len(train_y), len(train), mode, generator)
        head.train()
        for start in range(0, len(order), batch):
            b = order[start:start + batch]
            if len(b) < 2:  # batch norm needs two rows; the scheduler still steps, as serkit's does not skip
                scheduler.step()
                continue
            soft = torch.nn.functional.one_hot(targets[b], num_classes).float()
            soft = soft * (1 - smoothing) + smoothing / num_classes
            mix = None
            if mixup > 0:
                lam, partner = float(mix_rng.beta(mixup, mixup)), torch.randperm(len(b), generator=generator)
                mix, soft = (partner, lam), lam * soft + (1 - lam) * soft[partner]
            loss = -(soft * torch.log_softmax(head(rows[b], mix), 1)).sum(1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
        kept.append((score(valid_x, valid_y), epoch, copy.deepcopy(head.state_dict())))
    best = sorted(kept, key=lambda k: (-k[0], k[1]))[:top_k]
    head.load_state_dict({key: sum(k[2][key].float() for k in best) / len(best) for key in best[0][2]})
    return {"valid": score(valid_x, valid_y), "test": score(test_x, test_y), "epochs": sorted(k[1] for k in best),
            "history": [k[0] for k in kept], "final_lr": optimiser.param_groups[0]["lr"],
            "layer_weights": (torch.softmax(head.weights, 0).detach().numpy().round(3).tolist()
                              if layers == "weighted" else None)}


def run_folds(pooled: dict, copies: int, **options) -> list[dict]:
    """Every fold of a file `extract` wrote (a dict of its arrays) -> per fold train_head's result + "fold"."""
    classes = [str(c) for c in pooled["classes"]]
    row = {str(u): i for i, u in enumerate(pooled["ids"])}
    labels = np.array([classes.index(str(label)) for label in pooled["labels"]])
    versions = ["plain"] + [f"copy{k}" for k in range(1, copies + 1)]
    missing = [v for v in versions if v not in pooled]
    if missing:
        raise SystemExit(f"--copies {copies}: the file has no {', '.join(missing)} (extract with --copies {copies})")
    folds = sorted({int(key[1:].split("_")[0]) for key in pooled if key.startswith("f") and key.endswith("_test")})
    results = []
    for fold in folds:
        at = {part: np.array([row[str(u)] for u in pooled[f"f{fold}_{part}"]]) for part in PARTS}
        result = train_head([pooled[v][at["train"]] for v in versions], labels[at["train"]],
                            pooled["plain"][at["valid"]], labels[at["valid"]], pooled["plain"][at["test"]],
                            labels[at["test"]], len(classes), **options)
        results.append({"fold": fold, **result})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    e = sub.add_parser("extract", help="pooled layers of the clips and their wave copies -> .npz")
    e.add_argument("--root", required=True)
    e.add_argument("--encoder", required=True)
    e.add_argument("--cache", required=True, help="serkit's feature cache (read, and filled with what it lacks)")
    e.add_argument("--copies", type=int, default=2)
    e.add_argument("--option", action="append", default=[], help="corpus option, e.g. folds=emobox")
    e.add_argument("--out", required=True)
    h = sub.add_parser("head", help="train the pooled head on every fold; print valid and test UA")
    h.add_argument("pooled")
    h.add_argument("--copies", type=int, default=2)
    h.add_argument("--mode", choices=("one", "all"), default="one")
    for flag, kind, default in (("epochs", int, 25), ("lr", float, 1e-3), ("weight-decay", float, 1e-2),
                                ("batch", int, 16), ("dropout", float, 0.3), ("smoothing", float, 0.1),
                                ("mixup", float, 0.4), ("seed", int, 0), ("hidden", int, 0)):
        h.add_argument(f"--{flag}", type=kind, default=default)
    h.add_argument("--layers", choices=("weighted", "concat"), default="weighted")
    h.add_argument("--schedule", choices=("onecycle", "serkit"), default="onecycle")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.step == "extract":
        extract(args.root, args.encoder, args.cache, args.copies, args.out, args.option)
        print(f"wrote {args.out}")
        return 0
    options = {k: getattr(args, k) for k in ("mode", "epochs", "lr", "weight_decay", "batch", "dropout", "smoothing",
                                             "mixup", "seed", "hidden", "layers", "schedule")}
    results = run_folds(dict(np.load(args.pooled)), args.copies, **options)
    for r in results:
        print(f"fold {r['fold']}: valid UA {r['valid']:.1f}, test UA {r['test']:.1f}, epochs {r['epochs']}")
    valid, test = (np.array([r[k] for r in results]) for k in ("valid", "test"))
    print(f"copies {args.copies} {options}: valid UA {valid.mean():.2f}, test UA {test.mean():.2f} ± "
          f"{test.std(ddof=1) if len(test) > 1 else 0:.2f} per fold {test.round(1).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
