"""The chunk pool: sized by the CPUs this process may use, and alive after fork."""
import os
import subprocess
import sys
import textwrap

import pytest

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
