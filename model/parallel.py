"""A small thread pool for batch chunks.

NumPy releases the GIL inside copies and GEMMs, so Python threads working on
separate chunks keep both cores busy even in the single-threaded parts (patch
copies, col2im, elementwise work) that BLAS threading does not reach. While
chunks run in parallel, BLAS is held to one thread per chunk so the two kinds of
parallelism do not fight over the same cores: the trainer wraps its loop in
`blas_single_threaded()`.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits


def usable_cpus():
    """CPUs this process may run on: its affinity mask (taskset, a container's
    cpuset), which `os.cpu_count()` ignores; counting the host's CPUs would
    start threads that only queue for the same cores."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS or Windows
        return os.cpu_count() or 1


WORKERS = max(1, min(int(os.environ.get("DIGITDRAW_THREADS", usable_cpus())), 8))

# Created on first use, per process: a forked child inherits the parent's pool
# object but not its threads, and would wait forever on work nobody runs.
_pool = None
_pool_lock = threading.Lock()


def _forget_pool():
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _executor():
    global _pool
    if WORKERS == 1:
        return None
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="chunk")
        return _pool


def blas_single_threaded():
    """Context manager: one BLAS thread while the chunk pool provides parallelism."""
    return threadpool_limits(limits=1 if WORKERS > 1 else None, user_api="blas")


def worker_slices(n):
    """One contiguous batch slice per pool thread, for elementwise layers."""
    step = max(1, -(-n // WORKERS))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def map_chunks(fn, chunks):
    """fn over chunks, results in chunk order (deterministic reductions)."""
    if WORKERS == 1 or len(chunks) == 1:
        return [fn(c) for c in chunks]
    return list(_executor().map(fn, chunks))


def in_background(fn, *args, **kwargs):
    """Start fn(*args, **kwargs) on the pool; returns a function that waits for its
    result. Lets a single-threaded NumPy call (a big reduction) overlap with the
    chunks mapped after it. Runs inline when there is one worker."""
    executor = _executor()
    if executor is None:
        result = fn(*args, **kwargs)
        return lambda: result
    return executor.submit(fn, *args, **kwargs).result


# Below this many elements an elementwise pass runs on the calling thread:
# handing a small one (a dense layer's 128x128) to the pool costs more than it saves.
SPLIT_ELEMENTS_MIN = 1 << 17


def map_slices(fn, n, size, minimum=SPLIT_ELEMENTS_MIN):
    """fn over one contiguous slice of range(n) per pool thread, for work of
    `size` units (elements, or a product's multiply-adds) that NumPy would run
    on one thread; fn((0, n)) on the calling thread when size < minimum."""
    if size < minimum:
        fn((0, n))
        return
    map_chunks(fn, worker_slices(n))
