"""Start gunicorn on loopback for a benchmark, wait until it answers, stop it.

Shared by bench_serve and soak so both measure the server as `make run`
starts it: the repo's gunicorn.conf.py, only the bind forced to 127.0.0.1.
"""
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO / "gunicorn.conf.py"
APP_SPEC = "app:create_app()"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`with Gunicorn(workers=2) as server:` -> server.port, server.worker_pids()."""

    def __init__(self, app_spec=APP_SPEC, workers=2, extra_env=None, extra_args=()):
        self.app_spec = app_spec
        self.extra_args = list(extra_args)
        self.workers = workers
        self.port = free_port()
        # Same thread settings as the container image: one BLAS thread per worker.
        self.env = dict(os.environ, PORT=str(self.port), WEB_CONCURRENCY=str(workers),
                        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **(extra_env or {}))
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
        self.proc = None

    def __enter__(self):
        gunicorn = Path(sys.executable).parent / "gunicorn"
        argv = [str(gunicorn), "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), *self.extra_args, self.app_spec]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.stop()
        os.unlink(self.log.name)

    def output(self):
        return Path(self.log.name).read_text(errors="replace")

    def wait_ready(self, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.output()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and len(self.worker_pids()) == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"gunicorn not healthy after {timeout_s}s:\n{self.output()}")

    def worker_pids(self):
        """The master's children, i.e. the workers serving requests."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in children.split())

    def cpu_seconds(self):
        """CPU time (user + system) spent so far by the master and all its workers,
        including workers already recycled (their time is in the master's cutime)."""
        def times(pid, with_children):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0
            utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
            return utime + stime + (cutime + cstime if with_children else 0)
        ticks = times(self.proc.pid, True) + sum(times(pid, False) for pid in self.worker_pids())
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rss_kib(pid):
    """Resident set size of a process from /proc (VmRSS), in KiB; None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
