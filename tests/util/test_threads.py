"""util/threads.py: threads per job fill the cores without oversubscribing them, a library call puts torch's
thread count back, and the facts a run records say what it ran on."""

from __future__ import annotations

import json
import os

import pytest
import torch

from serkit.training.cv import _earlier_compute
from serkit.util.threads import available_cores, compute_facts, default_threads, torch_threads


@pytest.mark.parametrize("cores, jobs, expected", [("4", 1, 4), ("4", 2, 2), ("4", 3, 1), ("2", 8, 1)])
def test_threads_per_job_are_the_cores_shared_out(monkeypatch, cores, jobs, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", cores)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads(jobs) == expected


def test_ddp_processes_on_a_node_share_its_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_threads(1) == 2


def test_without_omp_num_threads_the_affinity_mask_counts(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert available_cores() == len(os.sched_getaffinity(0))


def test_bad_counts_are_refused_with_what_was_expected(monkeypatch):
    with pytest.raises(ValueError, match="jobs=0"):
        default_threads(0)
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='many'"):
        available_cores()


def test_torch_threads_are_put_back_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(before + 2) as inside:
            assert inside == torch.get_num_threads() == before + 2
            raise RuntimeError("the run failed")
    assert torch.get_num_threads() == before


def test_compute_facts_name_torch_threads_jobs_and_kernel_settings(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    with torch_threads(2):
        facts = compute_facts(jobs=3)
    assert (facts["torch"], facts["threads"], facts["jobs"]) == (torch.__version__, 2, 3)
    assert facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and facts["cpu"]
    assert facts["env"]["MKL_CBWR"] == "AVX2"
    json.dumps(facts)  # run.json must hold it


def test_a_run_resumed_on_other_settings_keeps_the_earlier_ones(tmp_path):
    run_json = tmp_path / "run.json"
    first, second = {"threads": 1, "jobs": 2}, {"threads": 2, "jobs": 1}
    assert _earlier_compute(run_json, first) == []  # no run.json yet
    run_json.write_text(json.dumps({"compute": first, "compute_before": []}))
    assert _earlier_compute(run_json, first) == []  # same settings: nothing to keep
    assert _earlier_compute(run_json, second) == [first]
    run_json.write_text(json.dumps({"compute": second, "compute_before": [first]}))
    assert _earlier_compute(run_json, first) == [second]  # back to the first settings: the second is kept
    assert _earlier_compute(run_json, {"threads": 4}) == [first, second]
