"""Prometheus metrics: `GET /metrics` in the text format, counted across gunicorn workers.

gunicorn runs several worker processes; each would count only its own requests.
prometheus-client's multiprocess mode keeps every process's values in small
memory-mapped files under PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py makes a
fresh one per server start) and adds them up when scraped, so any worker
answers /metrics with the server's totals. Without that variable, or with it
empty (tests, `flask run`), the process's own registry is served.

Other modules count through the functions here (`count_answer`,
`count_correction`) rather than touching metric objects.
"""
import functools
import os
import time

from flask import Blueprint, Response, g, request

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client enters multiprocess mode when the variable merely exists:
# set but empty ("PROMETHEUS_MULTIPROC_DIR=" in a compose file), it writes its
# files into the working directory, while `registry()` below and
# gunicorn.conf.py read empty as unset. Empty is unset everywhere, then; this
# must run before prometheus-client is imported, which decides at import.
if os.environ.get(MULTIPROC_ENV) == "":
    del os.environ[MULTIPROC_ENV]

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess  # noqa: E402

# The classic text format, which every Prometheus (2.x and 3.x) and most other
# scrapers read; our names are plain ASCII, so 1.0.0 would add nothing.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Latency buckets in seconds: a prediction takes a few milliseconds here
# (docs/benchmarks.md), a loaded server tens; above a second is an incident.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("digitdraw_http_requests", "HTTP requests answered, by route template, method and status.",
                   ["route", "method", "status"])
LATENCY = Histogram("digitdraw_http_request_duration_seconds",
                    "Time from request start to response, by route template.", ["route"],
                    buckets=LATENCY_BUCKETS)
ANSWERS = Counter("digitdraw_predictions", "Answers of /predict, by predicted digit.", ["digit"])
UNSURE = Counter("digitdraw_predictions_unsure", "Answers whose top probability was below the "
                 "unsure threshold (shown as a guess between two digits).")
NOT_DIGIT = Counter("digitdraw_predictions_not_digit", "Answers with is_digit false: the drawing did not "
                    "look like any digit.")
CORRECTIONS = Counter("digitdraw_corrections_stored", "Corrections (drawing + true label) stored by "
                      "POST /feedback.")
# An info-style gauge (value 1, identity in labels): prometheus-client's Info
# type does not work in multiprocess mode. "max" keeps it after the process
# that set it (the master, with preload) is the only one holding it.
MODEL = Gauge("digitdraw_model_info", "The model being served (value 1; name and weights hash in labels).",
              ["name", "sha256"], multiprocess_mode="max")

UNMATCHED_ROUTE = "unmatched"  # 404s: never a label per random path

bp = Blueprint("metrics", __name__)


# A metric's child for one set of label values, looked up once: `labels()`
# checks and joins its arguments on every call (measured in-process: the
# request hook took 16 us that way, 6 us this way). Bounded, as a client can
# send any method name.
@functools.lru_cache(maxsize=1024)
def _requests_child(route, method, status):
    return REQUESTS.labels(route=route, method=method, status=status)


@functools.lru_cache(maxsize=1024)
def _latency_child(route):
    return LATENCY.labels(route=route)


@functools.lru_cache(maxsize=64)
def _answers_child(digit):
    return ANSWERS.labels(digit=str(digit))


def count_answer(digit, unsure, is_digit):
    """Count one /predict answer."""
    _answers_child(digit).inc()
    if unsure:
        UNSURE.inc()
    if not is_digit:
        NOT_DIGIT.inc()


def count_correction():
    """Count one stored correction (call it once the store has it)."""
    CORRECTIONS.inc()


def set_model(identity):
    """Publish the loaded model's identity (`Model.identity`)."""
    MODEL.labels(name=str(identity.get("name", "model")), sha256=str(identity.get("sha256", ""))).set(1)


def registry():
    """What to serve: every process's values in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return combined
    return REGISTRY


@bp.get("/metrics")
def scrape():
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def register(app):
    """Time and count every request (page, API, static files, errors alike)."""

    @app.before_request
    def start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count_request(response):
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        _requests_child(route, request.method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            _latency_child(route).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
