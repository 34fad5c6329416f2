"""An experiment gives the same bits alone (`--jobs 1`) as beside another (`--jobs 2`) at the same thread count,
and other bits at another thread count (issue 14, section 1; README "What varies").

The demo's filterbank -> ECAPA-TDNN experiment (9), one fold, 2 epochs, top 2 averaged; beside it the text
experiment (10) on a tiny BERT. Two runs of a few seconds each, plus two worker processes' start-up.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from serkit.config import load_config
from serkit.demo import DEMO_ECAPA, demo_adapter
from serkit.model import build_model
from serkit.training.paper import run_paper
from serkit.upstream.tiny import save_tiny_bert
from serkit.util.threads import torch_threads

TRAIN = {"max_epochs": 2, "top_k": 2}  # the demo's recipe otherwise (8 epochs, top 5)
EXPERIMENT = "09_fbank_ecapa"
# what a fold writes that must not depend on how it was run (cost.json and logs hold times)
RESULT_FILES = ["fold_1/result.json", "fold_1/split.json", "fold_1/model/metrics.json", "cv.json"]


@pytest.fixture(scope="module")
def runs(synth_iemocap_root, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("reproducible")
    adapt = demo_adapter({"text": str(save_tiny_bert(root / "bert", ["so", "happy", "sad"])),
                          "wav2vec2": "unused", "hubert": "unused"}, train=TRAIN)

    def paper(name, experiments, jobs, threads):
        run_paper(synth_iemocap_root, root / name, experiments, overrides=["folds=[1]"], adapt=adapt, progress=None,
                  jobs=jobs, threads=threads)
        return root / name / EXPERIMENT

    threads_before = torch.get_num_threads()
    runs = {"alone": paper("alone", [9], jobs=1, threads=1), "beside": paper("beside", [9, 10], jobs=2, threads=1)}
    assert torch.get_num_threads() == threads_before  # a library call leaves its caller's threads alone
    return runs


def weights(run) -> dict[str, bytes]:
    """The bundle's averaged weights, each tensor as its raw bytes (bitwise: torch.equal calls -0.0 == 0.0)."""
    return {name: tensor.numpy().tobytes() for name, tensor in load_file(bundle_weights(run)).items()}


def bundle_weights(run):
    return run / "fold_1" / "model" / "model.safetensors"


def metadata(run) -> dict[str, str]:
    with safe_open(bundle_weights(run), "pt") as weights_file:
        return weights_file.metadata()


def differing(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    assert a.keys() == b.keys()
    return [key for key in a if a[key] != b[key]]


def test_alone_and_beside_another_give_the_same_results_and_weights(runs):
    alone, beside = runs["alone"], runs["beside"]
    assert json.loads((alone / "fold_1/result.json").read_text())["averaged"] is not None  # 2 checkpoints averaged
    for name in RESULT_FILES:
        assert (alone / name).read_bytes() == (beside / name).read_bytes(), name
    assert not differing(weights(alone), weights(beside))
    # not the files' bytes: safetensors writes its metadata entries in an order that changes per process
    assert metadata(alone) == metadata(beside)
    # the beside run really ran two experiments at once, in worker processes
    assert (beside.parent / "10_bert_text" / "fold_1" / "result.json").is_file()


def test_each_run_records_its_threads_jobs_and_torch(runs):
    for name, threads, jobs in (("alone", 1, 1), ("beside", 1, 2)):
        compute = json.loads((runs[name] / "run.json").read_text())["compute"]
        assert (compute["threads"], compute["jobs"], compute["torch"]) == (threads, jobs, torch.__version__), name
        assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_another_thread_count_changes_the_gradients():
    """Why a run fixes its thread count: the same batch through the same ECAPA-TDNN gives other gradient bits
    at 2 threads than at 1, which the comparison above would see (training from there moves UA by points)."""
    cfg = load_config({"name": "threads", "model": {
        "upstreams": [{"name": "fbank", "layers": "last", "freeze": "all"}],
        "aggregators": [{"name": "ecapa", **DEMO_ECAPA}]}})
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=4)
    wavs = torch.randn(4, 3 * 16000, generator=torch.Generator().manual_seed(1))
    wav_lens = torch.tensor([48000, 40000, 30000, 20000])

    def gradients(threads: int) -> dict[str, bytes]:
        model.zero_grad()
        torch.manual_seed(2)  # the same dropout masks each time
        with torch_threads(threads):
            torch.nn.functional.cross_entropy(model(wavs, wav_lens), torch.arange(4)).backward()
        return {name: p.grad.numpy().tobytes() for name, p in model.named_parameters() if p.grad is not None}

    one = gradients(1)
    assert gradients(1) == one  # repeatable at one count
    assert differing(one, gradients(2))
