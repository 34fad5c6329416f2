"""Run calls in worker processes and take the workers down with the parent, whichever way it is stopped.

`ProcessPoolExecutor` on its own leaves workers running when its parent gets SIGTERM (the default action
ends the parent at once, with no `finally`) and waits for running calls on any other exception. Here SIGTERM
is turned into SystemExit for the duration, and on any exit that is not a normal finish every worker is
terminated before the exception goes on. Ctrl-C already reaches the workers (same process group).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator


def run_in_processes(call: Callable, tasks: Iterable[tuple], jobs: int,
                     initializer: Callable[[], None] | None = None) -> Iterator:
    """Yield call(*task) for each task as it completes, `jobs` at a time in spawned processes (spawn, not
    fork: a forked child would inherit torch's thread pools and locks mid-use). The first task that raises
    stops the others (their workers are terminated) and its exception goes on to the caller."""
    with _sigterm_as_exit():
        others = set(multiprocessing.active_children())  # children that are not this pool's workers
        pool = ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"), initializer)
        finished = False
        try:
            futures: list[Future] = [pool.submit(call, *task) for task in tasks]
            for future in as_completed(futures):
                yield future.result()
            finished = True
        finally:
            if not finished:
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
                # the executor cannot stop calls already running (Python 3.14 adds terminate_workers): its
                # workers are the multiprocessing children started since it was made
                _terminate([child for child in multiprocessing.active_children() if child not in others])
            pool.shutdown(wait=finished, cancel_futures=not finished)


def _terminate(processes: list) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


@contextmanager
def _sigterm_as_exit():
    """SIGTERM raises SystemExit(143) in the main thread while inside (elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
