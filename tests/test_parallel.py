"""The chunk pool: sized by the CPUs this process may use, and alive after fork."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from model import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, timeout=60, **env):
    environ = {k: v for k, v in os.environ.items() if k != "DIGITDRAW_THREADS"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_forked_after_the_pool_ran_can_still_map_chunks():
    """Regression: the child inherited a pool object without its threads and hung
    forever on its first map_chunks. The child arms an alarm, so a hang kills it
    (exit -14) instead of this test."""
    result = run_python("""
        import os, signal
        from model import parallel
        assert parallel.WORKERS == 2
        assert parallel.map_chunks(lambda c: c * 2, [1, 2, 3]) == [2, 4, 6]  # the pool's threads start
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)
            ok = parallel.map_chunks(lambda c: c + 1, [1, 2, 3, 4]) == [2, 3, 4, 5]
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", parallel.map_chunks(lambda c: -c, [1, 2]))
    """, DIGITDRAW_THREADS="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["child 0", "parent [-1, -2]"], result.stdout


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_pool_size_follows_cpu_affinity_not_the_host_count():
    result = run_python("""
        import os
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # as `taskset -c N` would
        from model import parallel
        print(parallel.WORKERS, parallel.usable_cpus())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]


@pytest.mark.parametrize("setting,expected", [("3", "3"), ("64", "8"), ("0", "1")])
def test_thread_count_setting_is_clamped(setting, expected):
    result = run_python("from model import parallel; print(parallel.WORKERS)", DIGITDRAW_THREADS=setting)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("n", [1, 2, 5, 128])
def test_worker_slices_cover_the_batch_once_in_order(n):
    slices = parallel.worker_slices(n)
    assert len(slices) == min(n, parallel.WORKERS)
    assert slices[0][0] == 0 and slices[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    assert all(end > start for start, end in slices)


def test_map_chunks_keeps_chunk_order():
    chunks = list(range(20))
    assert parallel.map_chunks(lambda c: c * c, chunks) == [c * c for c in chunks]


# In-process tests of the pool's rules (the subprocess tests above cannot see a
# mutated module): each sets WORKERS and starts from no pool, and shuts down
# the pool it made.

@pytest.fixture
def workers(monkeypatch):
    made = []

    def use(count):
        monkeypatch.setattr(parallel, "WORKERS", count)
        monkeypatch.setattr(parallel, "_pool", None)
        monkeypatch.setattr(parallel, "_pool_lock", threading.Lock())
        made.append(count)

    yield use
    if made and parallel._pool is not None:
        parallel._pool.shutdown(wait=True)


def record_thread(chunk):
    time.sleep(0.02)  # long enough that an idle pool thread would take the next chunk
    return chunk, threading.get_ident(), threading.current_thread().name


def test_chunks_run_on_exactly_workers_pool_threads(workers):
    workers(2)
    results = parallel.map_chunks(record_thread, list(range(8)))
    assert [chunk for chunk, _, _ in results] == list(range(8))
    threads = {ident for _, ident, _ in results}
    assert len(threads) == 2 and threading.get_ident() not in threads
    assert all(name.startswith("chunk_") for _, _, name in results)  # how a profile names them


def test_a_single_chunk_runs_on_the_calling_thread(workers):
    workers(2)
    assert parallel.map_chunks(record_thread, ["only"]) == [
        ("only", threading.get_ident(), threading.current_thread().name)]


def test_one_worker_runs_everything_inline(workers):
    workers(1)
    me = threading.get_ident()
    assert [(c, t) for c, t, _ in parallel.map_chunks(record_thread, [3, 1, 2])] == [(3, me), (1, me), (2, me)]
    ran = []
    wait = parallel.in_background(lambda a, b=0: ran.append(threading.get_ident()) or a * 10 + b, 4, b=2)
    assert ran == [me]  # already done when in_background returns
    assert wait() == 42 and parallel._pool is None


def test_in_background_passes_arguments_and_runs_on_the_pool(workers):
    workers(2)
    wait = parallel.in_background(lambda a, b=0: (a * 10 + b, threading.current_thread().name), 4, b=2)
    value, name = wait()
    assert value == 42 and name.startswith("chunk_")


def blas_threads():
    return [entry["num_threads"] for entry in threadpool_info() if entry["user_api"] == "blas"]


@pytest.mark.parametrize("count", [2, 3, 1])
def test_blas_is_held_to_one_thread_only_when_the_pool_has_several(workers, count):
    workers(count)
    with threadpool_limits(limits=2, user_api="blas"):   # 2 where the BLAS can (1 on one core)
        outside = blas_threads()
        assert outside
        with parallel.blas_single_threaded():
            assert blas_threads() == ([1] * len(outside) if count > 1 else outside)
        assert blas_threads() == outside


def test_usable_cpus_without_affinity_falls_back_to_the_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert parallel.usable_cpus() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undeterminable", says the documentation
    assert parallel.usable_cpus() == 1


def test_forgetting_the_pool_after_fork_drops_a_lock_held_at_fork_time(workers):
    """What a forked child runs: the parent's lock may have been held by a thread
    that does not exist in the child; the child needs a new one and a new pool."""
    workers(2)
    parallel.map_chunks(record_thread, [1, 2])
    parent_pool = parallel._pool
    parallel._pool_lock.acquire()  # held "by a thread of the parent"
    parallel._forget_pool()
    assert parallel._pool is None
    assert parallel._pool_lock.acquire(blocking=False)
    parallel._pool_lock.release()
    assert [c for c, _, _ in parallel.map_chunks(record_thread, [5, 6])] == [5, 6]
    assert parallel._pool is not parent_pool
    parent_pool.shutdown(wait=True)
