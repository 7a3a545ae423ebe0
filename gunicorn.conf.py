"""gunicorn settings for digitdraw: `gunicorn --config gunicorn.conf.py 'app:create_app()'`.

Environment: HOST (0.0.0.0), PORT (8000), WEB_CONCURRENCY or WORKERS (one per CPU), THREADS (1),
TIMEOUT (30 s), MAX_REQUESTS (50000), LOG_LEVEL (info); for slow and idle clients (see the block at
the end and docs/deployment.md) READ_TIMEOUT (20 s), KEEPALIVE (5 s),
MAX_CONNECTIONS (1000 per worker), READ_BUFFER_BYTES (64 MiB per worker).
"""
import gc as _gc
import os
import shutil as _shutil
import tempfile as _tempfile
from pathlib import Path as _Path

# One BLAS/OpenMP thread per worker: the workers already use every core, and
# N workers x N BLAS threads would oversubscribe them. Must happen before NumPy
# is imported, which preload_app does right after this file is read.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _cpu_count():
    """CPUs this process may run on (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _int_env(*names, default):
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
            if value < 1:
                raise SystemExit(f"{name} must be at least 1, got {value}")
            return value
    return default


# All interfaces by default, as a container needs; `make run` passes HOST=127.0.0.1
# so a developer's server is not reachable from the network unless asked.
bind = f"{os.environ.get('HOST', '').strip() or '0.0.0.0'}:{_int_env('PORT', default=8000)}"
# Inference is CPU-bound NumPy: one single-threaded worker per core.
workers = _int_env("WEB_CONCURRENCY", "WORKERS", default=_cpu_count())

# Load the model once in the master; forked workers share its memory.
preload_app = True


def pre_fork(server, worker):
    # Everything loaded so far (Flask, NumPy, the model: ~76,000 objects) lives as
    # long as the worker: moved out of the collector's reach, a full collection no
    # longer walks it. Measured in process: one full collection per ~3,000
    # /predict took 50 ms, one prediction's whole budget ten times over; frozen,
    # none in 3,000. (Pages stay shared with the master, too.)
    _gc.freeze()


# A prediction takes milliseconds; 30 s only catches a stuck worker.
timeout = _int_env("TIMEOUT", default=30)
graceful_timeout = 20

# Recycle workers now and then (cheap with preload) to bound any slow leak
# (none seen: a worker's RSS stayed flat through `make soak`'s 50,000 requests).
# A recycled worker stops accepting until its replacement is forked; with a
# jitter of 10% the two workers of the image, sharing the load evenly, were
# recycled within a second of each other and nobody accepted for that time
# (`make bench-attack`, docs/deployment.md). Half of max_requests spreads them,
# and a worker due for recycling waits while another restarts
# (app/worker_balance.py). Each recycle still leaves the others a queue twice
# as long for ~0.2 s (at 8 clients, about a hundred requests wait twice as
# long): every 2,000 requests /predict p99 at 8 clients was 31 ms where 10,000 gave 27.5.
# 10,000 meant a recycle every ~40 s per worker at full load, 12 in one side-by-side
# run against 2 with 50,000; the p99 medians of those runs (25.8 -> 24.1, 21.8 -> 18.1 ms)
# are within what two instances of one server differ by, so the case is the recycles
# themselves (docs/benchmarks.md, fourth and sixth passes; `python -m bench.compare_settings`).
max_requests = _int_env("MAX_REQUESTS", default=50000)
max_requests_jitter = max_requests // 2

# Headers are small for this API; refuse silly ones early.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# The app writes one JSON line per request itself; gunicorn's own log is for errors,
# written as JSON lines too (app/server_log.py), so stderr holds nothing else.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = "app.server_log.GunicornJsonLogger"

# Heartbeat files on tmpfs: a container's overlay filesystem can stall them.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Behind a reverse proxy, honour X-Forwarded-* only from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# No runtime-control socket in $HOME (gunicorn >= 25): nothing uses it here and
# a read-only or foreign home directory in a container must not matter.
control_socket_disable = True


# --- Slow and idle clients (issue 13; docs/deployment.md, "What the server withstands") ---
# The image is meant to face clients directly, with no buffering proxy in
# front. Sync workers read a request in the worker that serves it, so eight
# connections announcing a body they never send stopped both workers. This
# worker is gunicorn's gthread whose selector loop also reads every request
# whole (headers and body, with the deadlines below) before one of the
# threads runs the app: slow clients cost a socket each, never a thread.
worker_class = "app.buffering_worker.BufferingThreadWorker"
# Threads per worker run the app. Predictions are CPU-bound, so more threads
# add no throughput, only a longer tail: N threads share a core by turns and
# every prediction in flight finishes late (p99 at 8 clients: 34 ms with 1
# thread, 47 with 2, 51 with 4; docs/benchmarks.md). GET, HEAD and OPTIONS
# (/healthz, the page) have a thread of their own whatever this is.
threads = _int_env("THREADS", default=1)
# Seconds a connection may sit idle before (or between) requests.
keepalive = _int_env("KEEPALIVE", default=5)
# Connections per worker, idle, arriving or being served; past it the worker
# stops accepting and new ones wait in the kernel's listen backlog.
worker_connections = _int_env("MAX_CONNECTIONS", default=1000)
backlog = 2048
# READ_TIMEOUT (seconds to send a whole request, from its first byte) and
# READ_BUFFER_BYTES (unfinished requests buffered per worker) are read by
# the worker itself (app/buffering_worker.py); checked here so that a typo
# stops the server at start rather than in every worker.
_int_env("READ_TIMEOUT", default=20)
_int_env("READ_BUFFER_BYTES", default=64 * 1024 * 1024)

# --- Prometheus metrics across workers (app/metrics.py) --------------------
# prometheus-client's multiprocess mode: every process writes its counts to
# files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. It must be set
# before the app (and prometheus_client) is imported, hence here. Unless the
# operator names one, each server start gets a fresh directory under TMPDIR
# (/tmp), removed at exit; a named one is emptied at start, since counts left
# from an earlier run would be added in. (A reload keeps the directory: the
# variable is already set in the master.)

_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNED_ENV = "DIGITDRAW_OWNS_METRICS_DIR"
if not os.environ.get(_METRICS_ENV):
    os.environ[_METRICS_ENV] = _tempfile.mkdtemp(prefix="digitdraw-metrics-")
    os.environ[_OWNED_ENV] = os.environ[_METRICS_ENV]


def on_starting(server):
    directory = _Path(os.environ[_METRICS_ENV])
    directory.mkdir(parents=True, exist_ok=True)
    if os.environ.get(_OWNED_ENV) != str(directory):
        for stale in directory.glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    # A dead worker's live gauges must not be reported; its counters stay.
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    owned = os.environ.get(_OWNED_ENV)
    if owned and owned == os.environ.get(_METRICS_ENV):
        _shutil.rmtree(owned, ignore_errors=True)
