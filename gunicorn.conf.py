"""gunicorn settings for digitdraw: `gunicorn --config gunicorn.conf.py 'app:create_app()'`.

Environment: PORT (8000), WEB_CONCURRENCY or WORKERS (one per CPU), THREADS (1),
TIMEOUT (30 s), LOG_LEVEL (info).
"""
import os

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


bind = f"0.0.0.0:{_int_env('PORT', default=8000)}"
# Inference is CPU-bound NumPy: one single-threaded worker per core.
workers = _int_env("WEB_CONCURRENCY", "WORKERS", default=_cpu_count())
threads = _int_env("THREADS", default=1)

# Load the model once in the master; forked workers share its memory.
preload_app = True

# A prediction takes milliseconds; 30 s only catches a stuck worker.
timeout = _int_env("TIMEOUT", default=30)
graceful_timeout = 20
keepalive = 5

# Recycle workers now and then (cheap with preload) to bound any slow leak.
max_requests = 2000
max_requests_jitter = 200

# Headers are small for this API; refuse silly ones early.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# The app writes one JSON line per request itself; gunicorn's own log is for errors.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Heartbeat files on tmpfs: a container's overlay filesystem can stall them.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# Behind a reverse proxy, honour X-Forwarded-* only from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# No runtime-control socket in $HOME (gunicorn >= 25): nothing uses it here and
# a read-only or foreign home directory in a container must not matter.
control_socket_disable = True

# --- Prometheus metrics across workers (app/metrics.py) --------------------
# prometheus-client's multiprocess mode: every process writes its counts to
# files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up. It must be set
# before the app (and prometheus_client) is imported, hence here. Unless the
# operator names one, each server start gets a fresh directory under TMPDIR
# (/tmp), removed at exit; a named one is emptied at start, since counts left
# from an earlier run would be added in. (A reload keeps the directory: the
# variable is already set in the master.)
import shutil as _shutil
import tempfile as _tempfile
from pathlib import Path as _Path

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
