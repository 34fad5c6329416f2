"""Torch's CPU thread count for a training job, and the facts about the machine that a run records.

Why a run fixes its thread count: on the CPU, torch gives bit-identical results for one intra-op thread
count, but not across counts. A full-tensor sum is split into one partial sum per thread, and oneDNN
splits convolution weight gradients the same way. Over a few epochs those last bits move a small corpus's
UA by points (README, "What varies"). So a job runs at one thread count from start to end, one that does
not depend on how many jobs run beside it, and its run.json records the count.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from typing import Iterator

import torch

# Variables that change which CPU kernels torch, MKL and oneDNN pick, or how many threads they use: a run
# records the ones that are set, since each can change results.
KERNEL_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
              "DNNL_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "CUBLAS_WORKSPACE_CONFIG")


def available_cores() -> int:
    """The cores this process may use: $OMP_NUM_THREADS when set (the user's own cap), else the affinity
    mask (a container's cpuset or `taskset`), else os.cpu_count()."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise ValueError(f"OMP_NUM_THREADS={text!r}: expected a whole number of threads") from None
    return machine_cores()


def machine_cores() -> int:
    """The cores the affinity mask allows (a container's cpuset or `taskset`), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(jobs: int = 1) -> int:
    """Threads per job so that `jobs` jobs side by side (times the DDP processes on this node) use the
    cores without oversubscribing them: cores // jobs, at least 1. Two 2-thread jobs on 2 cores ran
    5-15x slower than two 1-thread ones."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: expected 1 or more jobs side by side")
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # torchrun / Lightning DDP ranks
    return max(1, available_cores() // (jobs * max(1, local_processes)))


def check_threads(threads: int | None, what: str = "--threads") -> None:
    if threads is not None and threads < 1:
        raise ValueError(f"{what}={threads}: expected 1 or more threads")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """torch's intra-op thread count set to `threads` inside (None: left as it is), then put back, so that
    a library call does not change its caller's process for good. Yields the count in use."""
    check_threads(threads, "threads")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def compute_facts(jobs: int = 1) -> dict:
    """What produced a result besides the config and the code: torch, the thread count in use, the jobs
    run side by side, the CPU and the kernel family torch picked for it, the GPU if any."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "jobs": jobs,
        "cores": machine_cores(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "env": {name: os.environ[name] for name in KERNEL_ENV if name in os.environ},
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; platform.processor() elsewhere, often less precise)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
