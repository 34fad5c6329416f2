"""Batch inference on Ray: files per second of `serkit predict --engine ray` vs one local `serkit predict`.

Usage: python benchmarks/ray_predict.py [--files 2000] [--few-files 500] [--encoder tiny|small] [--cores N]
                                        [--repeats 1] [--warmup 1] [--out FILE]

Both sides are fresh `python -m serkit predict` subprocesses on the same folder of short synthetic clips
(16 kHz 16-bit mono wavs, 0.5-3 s of serkit's speech-like signal) and the same model bundle (a random
wav2vec2, hf -> mean pooling -> linear):

- local: one process on all --cores (`--threads N`, the baseline of issue 13): decoding, then the model on N
  threads, file after file; and the same on one thread, since N OpenMP threads lose much of their time
  spinning when other jobs hold the cores (README, "What varies between runs");
- Ray: `--engine ray --address ...` on a Ray head this script starts with `ray start --head --num-cpus N`
  (and stops again): N actors of 1 thread, each decoding and predicting its own batches of 64 files, rows
  to Parquet parts. The head runs before the timing starts, as a cluster does; the time a job without
  --address spends starting its own Ray is measured apart (`ray start`'s time to a usable head).

Each run is timed as a whole (Python, torch and Ray imports, model load, start of the actors, every file), so
files/s is what a user waits for; and its CPU time is counted: the process's own, plus, for a Ray job, what
every process of the Ray head (daemons, actors) spent while the job ran. The CPU per file between the two file
counts is the work a file costs once started, and local / Ray of it is Ray's efficiency (its overhead is
1 - that). It is the fairer measure here: on a machine whose cores other jobs share, wall times depend on how
much of the CPU each side gets (two actors get more than one process, and a process's N OpenMP threads spin
while they wait for busy cores), CPU per file hardly. Goal (issue 13): Ray >= 0.8 of the local files/s
(overhead <= 25 %).

Memory: the peak RSS of the Ray side's driver (VmHWM of that process only, not of the Ray processes it talks
to, read from /proc while it runs) at both file counts: the driver holds two short strings per file and
counts, never the rows, so it should barely move when the file count grows.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _common

GOAL = 0.8


def make_bundle(directory: Path, encoder: str, seed: int) -> Path:
    import torch

    from serkit.bundle import save_bundle
    from serkit.config import load_config
    from serkit.model import build_model

    source = _common.save_speech_model(directory / "encoder", "wav2vec2", encoder, seed)
    cfg = load_config(_common.tiny_bundle_config({"name": "hf", "source": str(source), "layers": "last",
                                                  "freeze": "all"}))
    torch.manual_seed(seed)
    return save_bundle(directory / "bundle", build_model(cfg.model, num_classes=4), cfg, ["neu", "hap", "ang", "sad"],
                       metrics={"note": "untrained"})


@dataclass
class Run:
    """One subprocess: wall seconds, CPU seconds (its own, plus what the Ray processes spent while it ran, for a
    Ray job), and its peak RSS in MiB (VmHWM of that process alone)."""

    seconds: float
    cpu: float
    peak_mb: float


def run_measured(command: list[str], env: dict[str, str], ray_session: int | None = None) -> Run:
    """Run `command`; ray_session: the session id of the Ray head's processes, whose CPU time is added."""
    ray_before = session_cpu(ray_session) if ray_session else {}
    ray_seen = dict(ray_before)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        peak_kib, finished = 0, 0
        with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
            while not finished:
                status.seek(0)
                for line in status.read().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
                if ray_session:
                    ray_seen.update(session_cpu(ray_session))
                finished, code, usage = os.wait4(process.pid, os.WNOHANG)
                time.sleep(0 if finished else 0.05)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(code)  # reaped here: Popen must not wait again
        if process.returncode:
            log.seek(0)
            sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n"
                     f"{log.read().decode(errors='replace')[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    if ray_session:
        ray_seen.update(session_cpu(ray_session))
        cpu += sum(seconds - ray_before.get(pid, 0.0) for pid, seconds in ray_seen.items())
    return Run(seconds, cpu, peak_kib / 1024)


def session_cpu(session: int) -> dict[int, float]:
    """pid -> user + system CPU seconds of each live process of a session (/proc/<pid>/stat fields 14-15).
    Sampled while a job runs, since Ray's raylet does not wait for its workers: the CPU of an actor that
    ended is in no parent's account, so only its last sample counts it (at most 50 ms short)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:  # it ended meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # from field 3 (state) on: the name may hold spaces
        if int(fields[3]) == session:
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


class RayHead:
    """`ray start --head --block` in a session of its own: this script's Ray, stopped by signalling that session
    only (never `ray stop`, which would stop every Ray on the machine)."""

    def __init__(self, cores: int, folder: Path):
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        port = 6390 + os.getpid() % 500
        self.address = f"127.0.0.1:{port}"
        # Ray's token authentication with a token of this run's own (a driver given --address sends it only
        # when told to), handed to the head and to every driver through the environment
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [ray, "start", "--head", "--block", f"--num-cpus={cores}", "--num-gpus=0", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
             f"--temp-dir={folder}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=self.env)
        self._wait_until_usable()
        self.start_seconds = time.perf_counter() - started

    def _wait_until_usable(self) -> None:
        probe = [sys.executable, "-c", f"import ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                                       "assert ray.cluster_resources().get('CPU'); ray.shutdown()"]
        deadline = time.monotonic() + 120
        while subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env).returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                sys.exit("`ray start --head` did not come up (is a Ray already running on this port?)")
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # `ray start --block` stops what it started
            self.process.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def main() -> int:
    p = _common.parser(__doc__, repeats=1, warmup=1, repeats_help="timed runs per side (median)",
                       warmup_help="untimed runs of each side on 20 files before the timed ones (the first Ray job "
                                   "on a new head also starts its worker processes)")
    p.add_argument("--files", type=int, default=2000, help="short files in the archive")
    p.add_argument("--few-files", type=int, default=500, help="the smaller archive: CPU per file between the two, and the Ray driver's memory")
    p.add_argument("--encoder", choices=_common.ENCODER_SIZES, default="tiny", help="size of the random wav2vec2")
    p.add_argument("--cores", type=int, default=os.cpu_count(),
                   help="cores for each side: local --threads, Ray head --num-cpus")
    args = p.parse_args()
    if not 0 < args.few_files < args.files:
        sys.exit("--few-files must be between 0 and --files")
    _common.setup(args)

    with tempfile.TemporaryDirectory(prefix="serkit_bench_ray_") as tmp:
        tmp = Path(tmp)
        bundle = make_bundle(tmp, args.encoder, args.seed)
        folders = _common.short_archive(tmp, args.files, args.seed, {"few": args.few_files, "warm": 20})
        few, warm = folders["few"], folders["warm"]
        head = RayHead(args.cores, tmp / "ray")
        out = tmp / "rows.parquet"
        try:
            ray_env = {**_common.thread_env(1), **{k: head.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}}

            def local(threads: int):
                def run(folder: Path) -> Run:
                    return run_measured([sys.executable, "-m", "serkit", "predict", str(bundle), str(folder),
                                         "--out", str(tmp / "rows.jsonl"), "--threads", str(threads)],
                                        _common.thread_env(threads))
                return run

            def on_ray(folder: Path) -> Run:
                shutil.rmtree(out, ignore_errors=True)  # a fresh job each time, not a resume
                return run_measured([sys.executable, "-m", "serkit", "predict", str(bundle), str(folder), "--engine",
                                     "ray", "--address", head.address, "--out", str(out)], ray_env,
                                    ray_session=head.process.pid)

            sides = {"local": local(args.cores), "local-1": local(1), "ray": on_ray}
            for _ in range(args.warmup):
                for run in sides.values():
                    run(warm)
            runs: dict[tuple[str, int], list[Run]] = {(side, n): [] for side in sides for n in (args.few_files, args.files)}
            for _ in range(args.repeats):  # the sides and sizes take turns
                for n, folder in ((args.few_files, few), (args.files, folders["all"])):
                    for side, run in sides.items():
                        runs[side, n].append(run(folder))
        finally:
            head.stop()

    def median(side: str, n: int, what: str) -> float:
        return _common.median([getattr(run, what) for run in runs[side, n]])

    many, few_n = args.files, args.few_files
    table = _common.Table(
        f"Ray vs one local process: {many} short files (0.5-3 s), "
        f"{_common.encoder_description('wav2vec2', args.encoder)} bundle, {args.cores} cores",
        ["side", f"wall s, {few_n} / {many} files", f"files/s, {many} files", f"CPU s, {few_n} / {many} files",
         "CPU ms per file (marginal)", f"peak RSS MiB, {few_n} / {many} files"],
    )
    names = {"local": f"`serkit predict --threads {args.cores}` (one process on all cores)",
             "local-1": "`serkit predict --threads 1` (one process, one core)",
             "ray": f"`serkit predict --engine ray` ({args.cores} actors x 1 thread); RSS: the driver"}
    per_file = {side: (median(side, many, "cpu") - median(side, few_n, "cpu")) / (many - few_n) for side in sides}
    for side, name in names.items():
        table.add(name, f"{_common.fmt(median(side, few_n, 'seconds'))} / {_common.fmt(median(side, many, 'seconds'))}",
                  _common.fmt(many / median(side, many, "seconds")),
                  f"{_common.fmt(median(side, few_n, 'cpu'))} / {_common.fmt(median(side, many, 'cpu'))}",
                  _common.fmt(1000 * per_file[side]),
                  f"{median(side, few_n, 'peak_mb'):.0f} / {median(side, many, 'peak_mb'):.0f}")
    for side, what in (("local", f"one process on {args.cores} cores (issue 13's baseline)"),
                       ("local-1", "one process on one core")):
        rate = median(side, many, "seconds") / median("ray", many, "seconds")
        cost = per_file[side] / per_file["ray"]
        table.notes.append(f"Ray / {what}: files/s {rate:.2f} (goal >= {GOAL}: {_common.verdict(rate >= GOAL)}); "
                           f"work per file, local CPU / Ray CPU {cost:.2f} (overhead {1 - cost:.0%}; goal >= {GOAL}: "
                           f"{_common.verdict(cost >= GOAL)})")
    table.notes += [
        f"Ray driver peak RSS {median('ray', many, 'peak_mb') / median('ray', few_n, 'peak_mb'):.2f}x from "
        f"{few_n} to {many} files",
        "CPU s: user + system of the process, and for Ray also of every Ray process (head daemons, actors) while "
        f"the job ran; marginal = (CPU at {many} - CPU at {few_n} files) / {many - few_n}: the work per file "
        "with start-up left out, which other jobs on a shared machine do not change (wall times they do)",
        f"a job without --address first starts its own Ray: `ray start --head` took {head.start_seconds:.1f} s to a "
        "usable head here",
        f"median of {args.repeats} run(s) per cell; each run a fresh subprocess",
    ]
    _common.emit([table], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
