"""Ordered, bounded fan-out of work to processes.

Results come back in submission order whatever the worker count, which is what
makes outputs byte-identical for 1 or N workers; at most ``window`` chunks are
in flight, so memory does not grow with the size of the input.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import ShadownetError

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """CPUs this process may run on (respects container CPU sets, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent() -> None:
    # A parent killed with SIGKILL cannot stop its workers; ask Linux to do it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # The parent handles Ctrl-C and cleans up; workers just stop with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_method() -> str:
    """fork where it is safe, spawn elsewhere.

    Forking copies the loaded modules, so workers start at once instead of importing
    NumPy and OpenCV again (a third of a second each, a large share of a short run).
    But a fork of a process that runs other threads, TensorFlow's above all, can
    deadlock in the child: then, and off Linux, workers are spawned afresh.
    """
    if sys.platform == "linux" and threading.active_count() == 1 and "tensorflow" not in sys.modules:
        return "fork"
    return "spawn"


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` processes, in order, with a bounded number of items in flight.

    ``fn`` must be picklable (a module-level function or a functools.partial of one).
    With ``workers <= 1`` everything runs in this process.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or workers * 4
    context = multiprocessing.get_context(_start_method())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_die_with_parent)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise ShadownetError(
            "a worker process died unexpectedly (killed, or out of memory?); try fewer --workers"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
