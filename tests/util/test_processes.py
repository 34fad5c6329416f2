"""run_in_processes: results come back; a failing task or SIGTERM to the parent takes every worker down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serkit.util.processes import run_in_processes

# Two workers sleep for a minute; the parent waits on them. The script prints its workers' pids once they run.
SCRIPT = """
import os, sys, time
from serkit.util.processes import run_in_processes
tasks = [(60,), ({bad!r},)] if {bad!r} else [(60,), (60,)]
for _ in run_in_processes(time.sleep, tasks, 2):
    pass
"""


def workers_of(pid: int) -> list[int]:
    """Live multiprocessing workers (spawn_main in their command line) whose parent is pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def start(bad=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT.format(bad=bad)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_workers(proc: subprocess.Popen, count: int) -> list[int]:
    for _ in range(600):  # spawned workers import the parent's main modules first: allow for a slow machine
        workers = workers_of(proc.pid)
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the workers did not start: {proc.communicate()}")


def test_results_come_back_from_every_task():
    assert sorted(run_in_processes(pow, [(2, 3), (3, 2), (2, 10)], jobs=2)) == [8, 9, 1024]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from Linux's /proc")
def test_sigterm_to_the_parent_terminates_its_workers():
    proc = start()
    workers = wait_for_workers(proc, 2)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)  # the workers would sleep on for a minute if left alone
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from Linux's /proc")
def test_a_failing_task_raises_and_stops_the_others():
    proc = start(bad="not a number")  # time.sleep("not a number") raises TypeError at once
    # left running, the other worker's minute of sleep would hold the parent's exit (it joins its workers)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "TypeError" in err
