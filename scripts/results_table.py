"""Build docs/results.json (and print the markdown tables) from finished run folders.

    python scripts/results_table.py docs/results_runs.yaml RUNS_DIR [RUNS_DIR ...] [--json docs/results.json]
        [--fill docs/results.md]

The YAML lists one entry per row: `system`, `encoder`, `classes` (8 or 4), `run` (a folder under RUNS_DIR
holding a `serkit cv` run's cv.json + cost.json, or a `serkit baseline` run's cv.json + probe.json /
baseline.json) and `command` (what produced it) and an `id` shared by a system's 8- and 4-class rows; optional `pairs` lists
paired comparisons `{name, a, b}` by row id (a - b, fold by fold). Optional `protocol`: "clip" (the default: every clip
scored on its own) or "speaker" (features normalised per speaker over that speaker's clips, test speakers' included:
a transductive protocol, tabled apart). Optional `summary`: `{id, name}` entries, the rows of a short "At a glance"
table put first (each id's 8- and 4-class UA side by side, under a short name). Every number comes from the run
folders, or with --keep-missing / --merge-partial from the earlier --json's rows of the same command: nothing is
typed in by hand. Several RUNS_DIRs are searched in order, the first holding a row's run (its cv.json) wins: e.g.
a machine's run folders first, then docs/runs, the records archived in the repository (scripts/archive_runs.py).

Refit runs (`train.refit`) report no best single checkpoint (theirs trained on other data than the tested
model), so they get no averaged-vs-best comparison; their epochs per fold count the refit's too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from serkit.evaluation.tables import MeanStd


def mean_std(values) -> tuple[float, float]:
    """Mean and std as `serkit cv` takes them (MeanStd: the sample std), the std 0.0 for a single value."""
    stat = MeanStd.of(values)
    return stat.mean, 0.0 if stat.std is None else stat.std


def find_run(name: str, runs: list[Path]) -> Path | None:
    """The first of runs/name holding a cv.json, or None."""
    return next((folder / name for folder in runs if (folder / name / "cv.json").is_file()), None)


def load_row(entry: dict, run: Path) -> dict:
    cv = json.loads((run / "cv.json").read_text())
    folds = cv["folds"]
    cost = {}
    for name in ("cost.json", "probe.json"):  # a cv run's cost, or what a probe records of its own
        if (run / name).is_file():
            cost = json.loads((run / name).read_text())
    folds_cost = [json.loads(p.read_text()) for p in sorted(run.glob("fold_*/cost.json"))]
    if not cost and folds_cost:  # a run cut short: its finished folds' costs
        cost = {"cpu_seconds": sum(c["cpu_seconds"] for c in folds_cost),
                "trainable_params": max(c["trainable_params"] for c in folds_cost)}
    row = {
        "id": entry["id"], "system": entry["system"], "encoder": entry["encoder"], "folds": entry.get("folds", "emobox"),
        "classes": entry["classes"], "command": entry["command"], "protocol": protocol_of(entry),
        "fold_ids": [f["fold"] for f in folds],
        "ua": 100 * cv["summary"]["ua"]["mean"], "wa": 100 * cv["summary"]["wa"]["mean"],
        # serkit cv writes no std for one fold (a run given --folds k); 0.0 as mean_std takes it
        "ua_std": 100 * (cv["summary"]["ua"]["std"] or 0.0), "wa_std": 100 * (cv["summary"]["wa"]["std"] or 0.0),
        "ua_per_fold": [100 * f["metrics"]["ua"] for f in folds],
        "wa_per_fold": [100 * f["metrics"]["wa"] for f in folds],
        "trainable_params": cost.get("trainable_params", entry.get("trainable_params")),
        "cpu_seconds": cost.get("cpu_seconds", entry.get("cpu_seconds")),
    }
    epochs = sum((c.get("epochs") or 0) + (c.get("refit_epochs") or 0) for c in folds_cost)
    fold_cpu = sum(c["cpu_seconds"] for c in folds_cost)
    # the folds' own training (the run's total also holds its encoding on a cold cache)
    row["cpu_seconds_per_epoch"] = round(fold_cpu / epochs, 1) if epochs else None
    if cv.get("best_single"):
        row["best_single_ua"] = 100 * cv["best_single"]["ua"]["mean"]
        row["best_single_ua_per_fold"] = [100 * f["best_single"]["ua"] for f in folds]
    return row


def merge_carried(fresh: dict, kept: dict) -> dict:
    """A run resumed elsewhere: `fresh` (from the run folder) holds some folds, `kept` (the earlier JSON's row of
    the same command) others. The folds `fresh` lacks come from `kept` and are listed in `carried_folds` (marked †
    in the tables); on a fold both hold, `fresh` wins. Mean and std (`mean_std`, as `serkit cv`) are taken again over
    all folds. The cost adds the kept folds' own (`carried_cpu_seconds`, kept with the row so that merging again
    does not count the fresh folds twice; unknown, so None, when only some of them are taken); the seconds per
    epoch are the two parts' figures weighted by their folds (each fold runs the same recipe, so the kept part's
    rate holds for any of its folds, also when only some are taken)."""
    take = [f for f in kept["fold_ids"] if f not in fresh["fold_ids"]]
    folds = sorted(fresh["fold_ids"] + take, key=int)
    merged = {**fresh, "fold_ids": folds, "carried_folds": sorted(take, key=int)}

    def pick(key: str) -> list[float]:
        mine, theirs = dict(zip(fresh["fold_ids"], fresh[key])), dict(zip(kept["fold_ids"], kept[key]))
        return [mine[f] if f in mine else theirs[f] for f in folds]

    for score in ("ua", "wa"):
        merged[f"{score}_per_fold"] = pick(f"{score}_per_fold")
        merged[score], merged[f"{score}_std"] = mean_std(merged[f"{score}_per_fold"])
    if "best_single_ua_per_fold" in fresh and "best_single_ua_per_fold" in kept:
        merged["best_single_ua_per_fold"] = pick("best_single_ua_per_fold")
        merged["best_single_ua"] = float(np.mean(merged["best_single_ua_per_fold"]))
    else:  # a gain over some folds only would mislead
        merged.pop("best_single_ua_per_fold", None)
        merged.pop("best_single_ua", None)
    # the kept part's own cost: an earlier merge's kept folds, or the whole earlier row
    kept_cost_folds = kept.get("carried_folds") or kept["fold_ids"]
    kept_cpu = kept.get("carried_cpu_seconds") if "carried_folds" in kept else kept["cpu_seconds"]
    kept_per_epoch = kept.get("carried_cpu_seconds_per_epoch" if "carried_folds" in kept else "cpu_seconds_per_epoch")
    if sorted(take, key=int) != sorted(kept_cost_folds, key=int):  # its total is not known fold by fold
        kept_cpu = None
    merged["carried_cpu_seconds"], merged["carried_cpu_seconds_per_epoch"] = kept_cpu, kept_per_epoch
    merged["cpu_seconds"] = None if None in (fresh["cpu_seconds"], kept_cpu) else fresh["cpu_seconds"] + kept_cpu
    per_epoch = (fresh.get("cpu_seconds_per_epoch"), kept_per_epoch)
    if None not in per_epoch:
        n_fresh, n_kept = len(fresh["fold_ids"]), len(take)
        merged["cpu_seconds_per_epoch"] = round((per_epoch[0] * n_fresh + per_epoch[1] * n_kept) / len(folds), 1)
    else:
        merged["cpu_seconds_per_epoch"] = None
    return merged


PROTOCOLS = ("clip", "speaker")


def protocol_of(entry: dict) -> str:
    protocol = entry.get("protocol", "clip")
    if protocol not in PROTOCOLS:
        raise SystemExit(f"row {entry.get('id')!r}: protocol {protocol!r}, expected one of {', '.join(PROTOCOLS)}")
    return protocol


def paired(rows: dict[tuple[str, int], dict], a: str, b: str, classes: int, key: str = "ua_per_fold"
           ) -> tuple[float, float, list[str]]:
    """Mean and std of a - b over the folds both ran (a run cut short compares on the folds it finished)."""
    x, y = rows[(a, classes)], rows[(b, classes)]
    common = [f for f in x["fold_ids"] if f in y["fold_ids"]]
    diff = np.array([x[key][x["fold_ids"].index(f)] - y[key][y["fold_ids"].index(f)] for f in common])
    return (*mean_std(diff), common)


def markdown(rows: list[dict], classes: int, protocol: str = "clip") -> str:
    lines = ["| system | encoder | " + " | ".join(f"fold {i}" for i in range(1, 7))
             + " | WA | UA | best-ckpt UA | trainable | CPU s | CPU s / epoch |",
             "|---|---|" + "---|" * 6 + "---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in rows if r["classes"] == classes and r.get("protocol", "clip") == protocol):
        scores = dict(zip(r["fold_ids"], zip(r["wa_per_fold"], r["ua_per_fold"])))
        # a row carried whole has its † on the row; per-fold marks only for a row merged on this machine
        dagger = {} if r.get("carried") else {f: " †" for f in r.get("carried_folds", ())}
        per_fold = " | ".join(f"{scores[str(i)][0]:.1f} / {scores[str(i)][1]:.1f}{dagger.get(str(i), '')}"
                              if str(i) in scores else "—" for i in range(1, 7))
        params = f"{r['trainable_params']:,}" if r["trainable_params"] else "—"
        cpu = f"{r['cpu_seconds']:,.0f}" if r["cpu_seconds"] else "—"
        per_epoch = f"{r['cpu_seconds_per_epoch']:,.1f}" if r.get("cpu_seconds_per_epoch") else "—"
        best = f"{r['best_single_ua']:.1f}" if "best_single_ua" in r else "—"
        partial = f" ({len(r['fold_ids'])} folds)" if len(r["fold_ids"]) < 6 else ""
        carried = " †" if r.get("carried") else ""
        lines.append(f"| {r['system']}{carried} | {r['encoder']} | {per_fold} | {r['wa']:.1f} ± {r['wa_std']:.1f} | "
                     f"**{r['ua']:.1f}** ± {r['ua_std']:.1f}{partial} | {best} | {params} | {cpu} | {per_epoch} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("runs", nargs="+", type=Path, help="folders holding the run folders, searched in order")
    parser.add_argument("--json", default="docs/results.json")
    parser.add_argument("--keep-missing", action="store_true",
                        help="a row whose run folder is absent keeps its figures from the existing --json (same "
                             "command only), marked as carried over (†) in the tables")
    parser.add_argument("--merge-partial", action="store_true",
                        help="a run folder holding only some folds takes the others from the "
                             "existing --json's row of the same command (a run resumed on another machine; only for "
                             "the same code and config), each kept fold marked † in the tables")
    parser.add_argument("--fill", metavar="PAGE", help="also put the tables into PAGE (e.g. docs/results.md) between "
                                                      f"its {START} and {END} lines")
    args = parser.parse_args()
    spec = yaml.safe_load(Path(args.spec).read_text())
    summary = check_summary(spec.get("summary") or [], {entry["id"] for entry in spec["rows"]})  # before any write
    rows = []
    earlier = {}
    if (args.keep_missing or args.merge_partial) and Path(args.json).is_file():
        earlier = {(r["id"], r["classes"]): r for r in json.loads(Path(args.json).read_text())["rows"]}
    for entry in spec["rows"]:
        run = find_run(entry["run"], args.runs)
        if run is None:
            kept = earlier.get((entry["id"], entry["classes"]))
            if kept is not None and kept["command"] == entry["command"]:
                print(f"(kept from {args.json}: {entry['system']}, {entry['classes']} classes: {entry['run']})")
                rows.append({**kept, "protocol": protocol_of(entry), "carried": True})
            else:
                print(f"(not run yet: {entry['system']}, {entry['classes']} classes: {entry['run']})")
            continue
        if len(args.runs) > 1:  # which copy each row came from: a stale one here shadows the archive's
            print(f"(read from {run.parent}: {entry['system']}, {entry['classes']} classes)")
        row = load_row(entry, run)
        kept = earlier.get((entry["id"], entry["classes"]))
        if (args.merge_partial and kept is not None and kept["command"] == entry["command"]
                and set(kept["fold_ids"]) - set(row["fold_ids"])):
            row = merge_carried(row, kept)
            print(f"(folds {', '.join(row['carried_folds'])} kept from {args.json}: {entry['system']}, "
                  f"{entry['classes']} classes)")
        rows.append(row)
    by_name = {(r["id"], r["classes"]): r for r in rows}
    if len(by_name) != len(rows):
        raise SystemExit("two rows share an id and a class count")
    comparisons = []
    for pair in spec.get("pairs", []):
        for classes in (8, 4):
            if (pair["a"], classes) in by_name and (pair["b"], classes) in by_name:
                ua, ua_sd, common = paired(by_name, pair["a"], pair["b"], classes)
                wa, wa_sd, _ = paired(by_name, pair["a"], pair["b"], classes, "wa_per_fold")
                comparisons.append({"name": pair["name"], "classes": classes, "a": pair["a"], "b": pair["b"],
                                    "folds": common,
                                    "ua_diff": ua, "ua_diff_std": ua_sd, "wa_diff": wa, "wa_diff_std": wa_sd})
    for r in rows:
        if "best_single_ua_per_fold" in r:
            diff = np.array(r["ua_per_fold"]) - np.array(r["best_single_ua_per_fold"])
            gain, gain_std = mean_std(diff)
            comparisons.append({"name": f"top-5 averaged - best single checkpoint: {r['system']}",
                                "classes": r["classes"], "a": r["system"], "b": "its best single checkpoint",
                                "folds": r["fold_ids"], "ua_diff": gain, "ua_diff_std": gain_std,
                                "wa_diff": None, "wa_diff_std": None})
    Path(args.json).write_text(json.dumps({"rows": rows, "comparisons": comparisons}, indent=1) + "\n")
    text = tables(rows, comparisons, summary)
    print(text)
    if args.fill:
        fill(Path(args.fill), text)
        print(f"filled the tables of {args.fill}")
    print(f"wrote {args.json}")


HEADINGS = {8: "### 8 classes (1440 files; chance 12.5 %)\n\nPer fold: WA / UA (%) on the test actors; serkit systems "
               "report the average of their top-5 checkpoints.",
            4: "### 4 classes: neutral, happy, angry, sad (672 files; chance 25 %)"}
SPEAKER_HEADING = ("### Speaker-normalised (transductive), {classes} classes\n\nEach speaker's features standardised "
                   "by that speaker's own clips, test speakers' included (no labels read): not comparable with the "
                   "tables above or with EmoBox's.")
START, END = "<!-- EMOBOX-TABLES -->", "<!-- /EMOBOX-TABLES -->"


SUMMARY_HEADING = ("### At a glance\n\nUA (%) on the test actors, mean ± std over the folds; each row is a row of the "
                   "tables below (its full name, per-fold figures and command there; † as there); trainable "
                   "parameters of the 8-class model.")
PROTOCOL_NAMES = {"clip": "per clip", "speaker": "speaker-normalised (transductive)"}


def check_summary(summary, ids: set[str]) -> list[dict]:
    """The YAML's `summary` (a list of {id, name}, each id a row's, none twice), or SystemExit naming the entry."""
    if not isinstance(summary, list):
        raise SystemExit(f"summary: expected a list of {{id, name}} entries, got {type(summary).__name__}")
    seen = set()
    for number, entry in enumerate(summary, 1):
        if not isinstance(entry, dict) or set(entry) != {"id", "name"}:
            raise SystemExit(f"summary entry {number}: expected {{id, name}}, got {entry!r}")
        if entry["id"] not in ids:
            raise SystemExit(f"summary entry {number}: no row of the YAML has the id {entry['id']!r}")
        if entry["id"] in seen:
            raise SystemExit(f"summary entry {number}: the id {entry['id']!r} is listed twice")
        if "|" in str(entry["name"]):
            raise SystemExit(f"summary entry {number}: a '|' in the name would break the table")
        seen.add(entry["id"])
    return summary


def summary_table(rows: list[dict], summary: list[dict]) -> str:
    """The `summary` entries ({id, name}, checked by check_summary) as one line each: the 8- and 4-class UA of
    that id side by side ("—": no such row, or not run yet)."""
    by_id: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_id.setdefault(r["id"], {})[r["classes"]] = r
    lines = ["| system | 8 classes | 4 classes | trainable | protocol |", "|---|---:|---:|---:|---|"]
    for entry in summary:
        found = by_id.get(entry["id"], {})
        cells = [_summary_cell(found[c]) if c in found else "—" for c in (8, 4)]
        params, protocol = "—", "—"
        if found:
            some = found.get(8) or found[4]
            if some.get("trainable_params"):
                params = f"{some['trainable_params']:,}" + ("" if 8 in found else " (4 classes)")
            protocol = PROTOCOL_NAMES[some.get("protocol", "clip")]
        lines.append(f"| {entry['name']} | {cells[0]} | {cells[1]} | {params} | {protocol} |")
    return "\n".join(lines)


def _summary_cell(row: dict) -> str:
    folds = [f"folds {', '.join(row['fold_ids'])}"] if len(row["fold_ids"]) < 6 else []
    if row.get("carried_folds") and not row.get("carried"):  # some folds from an earlier session, others from this
        folds.append(f"† on {', '.join(row['carried_folds'])}")
    note = f" ({'; '.join(folds)})" if folds else ""
    return f"**{row['ua']:.1f}** ± {row['ua_std']:.1f}{note}" + (" †" if row.get("carried") else "")


def tables(rows: list[dict], comparisons: list[dict], summary: list[dict] = ()) -> str:
    parts = [f"{SUMMARY_HEADING}\n\n{summary_table(rows, summary)}"] if summary else []
    parts += [f"{HEADINGS[classes]}\n\n{markdown(rows, classes)}" for classes in (8, 4)]
    parts += [f"{SPEAKER_HEADING.format(classes=classes)}\n\n{markdown(rows, classes, 'speaker')}"
              for classes in (8, 4) if any(r.get("protocol") == "speaker" and r["classes"] == classes for r in rows)]
    if comparisons:
        lines = ["### Paired differences (a − b, fold by fold, mean ± std)", "",
                 "| comparison | classes | folds | UA (points) | WA (points) |", "|---|---:|---|---:|---:|"]
        for c in comparisons:
            wa = "—" if c["wa_diff"] is None else f"{c['wa_diff']:+.1f} ± {c['wa_diff_std']:.1f}"
            lines.append(f"| {c['name']} | {c['classes']} | {', '.join(c['folds'])} | "
                         f"{c['ua_diff']:+.1f} ± {c['ua_diff_std']:.1f} | {wa} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def fill(page: Path, text: str) -> None:
    """Replace what lies between the START and END markers of `page` with `text`."""
    content = page.read_text(encoding="utf-8")
    if content.count(START) != 1 or content.count(END) != 1 or content.index(START) > content.index(END):
        raise SystemExit(f"{page}: expected one {START} line followed by one {END} line around the tables")
    head, rest = content.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{text}{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
