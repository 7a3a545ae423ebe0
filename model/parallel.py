"""A small thread pool for batch chunks.

NumPy releases the GIL inside copies and GEMMs, so Python threads working on
separate chunks keep both cores busy even in the single-threaded parts (patch
copies, col2im, elementwise work) that BLAS threading does not reach. While
chunks run in parallel, BLAS is held to one thread per chunk so the two kinds of
parallelism do not fight over the same cores: the trainer wraps its loop in
`blas_single_threaded()`.
"""
import os
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import threadpool_limits

WORKERS = max(1, min(int(os.environ.get("DIGITDRAW_THREADS", os.cpu_count() or 1)), 8))
_pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="chunk") if WORKERS > 1 else None


def blas_single_threaded():
    """Context manager: one BLAS thread while the chunk pool provides parallelism."""
    return threadpool_limits(limits=1 if _pool is not None else None, user_api="blas")


def halves(n):
    """One contiguous batch slice per worker, for elementwise layers."""
    step = -(-n // WORKERS)
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def map_chunks(fn, chunks):
    """fn over chunks, results in chunk order (deterministic reductions)."""
    if _pool is None or len(chunks) == 1:
        return [fn(c) for c in chunks]
    return list(_pool.map(fn, chunks))
