"""GET /metrics: Prometheus text that adds up to what was really served,
in process and across the workers of a real gunicorn."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import encode

REPO = Path(__file__).resolve().parent.parent


def samples(text):
    """{(sample name, frozenset(labels)): value} of a scrape."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scrape, metric, /, **labels):
    return scrape.get((metric, frozenset(labels.items())), 0.0)


def delta(before, after, metric, /, **labels):
    return value(after, metric, **labels) - value(before, metric, **labels)


def test_metrics_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=0.0.4" in response.headers["Content-Type"]
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"digitdraw_http_requests", "digitdraw_http_request_duration_seconds", "digitdraw_predictions",
            "digitdraw_predictions_unsure", "digitdraw_predictions_not_digit",
            "digitdraw_corrections_stored", "digitdraw_model_info"} <= names


def test_counts_follow_real_requests(client, app, digit_png):
    from app import metrics
    for cached in (metrics._requests_child, metrics._latency_child, metrics._answers_child):
        cached.cache_clear()  # label children made afresh: by this test's requests, not an earlier one's
    before = samples(client.get("/metrics").get_data(as_text=True))
    answers = [client.post("/predict", data=digit_png(d), content_type="image/png").get_json()
               for d in (7, 7, 1, 0)]
    blank = encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0)))
    assert client.post("/predict", data=blank, content_type="image/png").status_code == 422
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/healthz").status_code == 200
    after = samples(client.get("/metrics").get_data(as_text=True))

    requests = "digitdraw_http_requests_total"
    assert delta(before, after, requests, route="/predict", method="POST", status="200") == 4
    assert delta(before, after, requests, route="/predict", method="POST", status="422") == 1
    assert delta(before, after, requests, route="unmatched", method="GET", status="404") == 1
    assert delta(before, after, requests, route="/healthz", method="GET", status="200") == 1
    assert delta(before, after, requests, route="/metrics", method="GET", status="200") == 1  # the first scrape
    assert delta(before, after, "digitdraw_http_request_duration_seconds_count", route="/predict") == 5
    assert delta(before, after, "digitdraw_http_request_duration_seconds_bucket", route="/predict",
                 le="+Inf") == 5
    assert 0 < delta(before, after, "digitdraw_http_request_duration_seconds_sum", route="/predict") < 60

    for digit in range(10):
        expected = sum(a["digit"] == digit for a in answers)
        assert delta(before, after, "digitdraw_predictions_total", digit=str(digit)) == expected
    assert delta(before, after, "digitdraw_predictions_unsure_total") == sum(a["unsure"] for a in answers)
    assert delta(before, after, "digitdraw_predictions_not_digit_total") == sum(not a["is_digit"] for a in answers)

    identity = app.extensions["digit_model"].identity
    assert value(after, "digitdraw_model_info", name=identity["name"], sha256=identity["sha256"]) == 1


def test_unsure_answers_are_counted(tmp_path, digit_png):
    """A model whose every answer is a 4 at 0.55: unsure, and (ten outputs) never "not a digit"."""
    from app import create_app
    from tests.test_refusals import model_answering
    probabilities = np.full(10, 0.05)
    probabilities[4] = 0.55
    app = create_app({"TESTING": True, "MODEL_PATH": model_answering(tmp_path, probabilities)})
    client = app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    answers = [client.post("/predict", data=digit_png(d), content_type="image/png").get_json() for d in (1, 7)]
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert [(a["digit"], a["unsure"], a["is_digit"]) for a in answers] == [(4, True, True)] * 2
    assert delta(before, after, "digitdraw_predictions_unsure_total") == 2
    assert delta(before, after, "digitdraw_predictions_not_digit_total") == 0
    assert delta(before, after, "digitdraw_predictions_total", digit="4") == 2


def test_count_correction_is_exposed(client):
    from app import metrics
    before = samples(client.get("/metrics").get_data(as_text=True))
    metrics.count_correction()
    metrics.count_correction()
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert delta(before, after, "digitdraw_corrections_stored_total") == 2


def test_set_model_publishes_name_and_hash():
    """The gauge carries exactly the identity given, or stand-ins for missing fields.
    The labels are removed again: the gauge is process-wide."""
    from app import metrics
    try:
        metrics.set_model({"name": "stand-in model", "sha256": "feedc0ffee12", "test_accuracy": 0.9})
        metrics.set_model({})
        scrape = samples(metrics.generate_latest(metrics.registry()).decode())
        assert value(scrape, "digitdraw_model_info", name="stand-in model", sha256="feedc0ffee12") == 1
        assert value(scrape, "digitdraw_model_info", name="model", sha256="") == 1
    finally:
        for labels in (("stand-in model", "feedc0ffee12"), ("model", "")):
            try:
                metrics.MODEL.remove(*labels)
            except KeyError:
                pass


def test_multiprocess_registry_adds_up_other_processes_files(tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR set, a scrape reads every process's files in it
    (here one written by a child process), not this process's own registry."""
    child = ("from prometheus_client import Counter; "
             "Counter('digitdraw_child_total_seen', 'from a child').inc(3)")
    subprocess.run([sys.executable, "-c", child], check=True, timeout=60,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    from app import metrics
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    registry = metrics.registry()
    assert registry is not metrics.REGISTRY
    scrape = samples(metrics.generate_latest(registry).decode())
    assert value(scrape, "digitdraw_child_total_seen_total") == 3
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    assert metrics.registry() is metrics.REGISTRY


EMPTY_DIR_SCRIPT = """
import json
from app import create_app
client = create_app().test_client()
client.get("/healthz")
scrape = client.get("/metrics").get_data(as_text=True)
print(json.dumps([line for line in scrape.splitlines() if line.startswith("digitdraw_http_requests_total")]))
"""


def test_an_empty_multiprocess_dir_means_unset(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR set to "" is no directory: the process counts in
    its own registry and /metrics serves it, with no metric files left in the
    working directory (prometheus-client alone would put them there)."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": str(REPO), "LOG_LEVEL": "error"}
    done = subprocess.run([sys.executable, "-c", EMPTY_DIR_SCRIPT], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = json.loads(done.stdout.strip().splitlines()[-1])
    assert 'digitdraw_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in lines
    assert list(workdir.iterdir()) == []


# ------------------------------------------------------------------ under gunicorn

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


@pytest.fixture
def gunicorn_two_workers(tmp_path):
    """`make run`'s server (gunicorn.conf.py) with 2 workers on loopback; yields (port, process)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(PORT=str(port), WEB_CONCURRENCY="2", TMPDIR=str(tmp_path), LOG_LEVEL="warning")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen([str(gunicorn), "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                             "app:create_app()"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if _request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not become healthy:\n" + (tmp_path / "gunicorn.log").read_text())
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _worker_pids(proc):
    try:
        return [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.slow
def test_counts_add_up_across_gunicorn_workers(gunicorn_two_workers, digit_png):
    port, proc = gunicorn_two_workers
    png = digit_png(7)
    sent = 40
    with ThreadPoolExecutor(8) as pool:  # concurrent: both sync workers get requests
        statuses = list(pool.map(lambda _: _request(port, "POST", "/predict", png,
                                                    {"Content-Type": "image/png"})[0], range(sent)))
    assert statuses == [200] * sent

    # Whichever worker answers the scrape, it reports the server's totals.
    scrapes = []
    for _ in range(6):
        status, body = _request(port, "GET", "/metrics")
        assert status == 200
        scrapes.append(samples(body.decode()))
    for scrape in scrapes:
        assert value(scrape, "digitdraw_http_requests_total", route="/predict", method="POST", status="200") == sent
        assert value(scrape, "digitdraw_predictions_total", digit="7") == sent
        assert value(scrape, "digitdraw_http_request_duration_seconds_count", route="/predict") == sent
        assert sum(v for (name, labels), v in scrape.items() if name == "digitdraw_model_info") == 1

    # A worker that dies is replaced; what it counted stays counted.
    workers = _worker_pids(proc)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(_worker_pids(proc)) != 2 or workers[0] in _worker_pids(proc)):
        time.sleep(0.2)
    status, body = _request(port, "GET", "/metrics")
    assert status == 200
    assert value(samples(body.decode()), "digitdraw_predictions_total", digit="7") == sent


@pytest.mark.slow
def test_gunicorn_metrics_dir_is_fresh_and_removed(tmp_path):
    """Each server start gets an empty multiprocess directory (old counts would
    otherwise come back), and stopping the server removes it."""
    def scrape_counts(scrapes):
        """Start a server, scrape it `scrapes` times; the /metrics count each scrape saw."""
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(PORT=str(port), WEB_CONCURRENCY="1", TMPDIR=str(tmp_path), LOG_LEVEL="warning")
        proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py",
                                 "--bind", f"127.0.0.1:{port}", "app:create_app()"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if _request(port, "GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            counts = []
            for _ in range(scrapes):
                status, body = _request(port, "GET", "/metrics")
                assert status == 200
                counts.append(value(samples(body.decode()), "digitdraw_http_requests_total",
                                    route="/metrics", method="GET", status="200"))
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith("digitdraw-metrics-")]
            return counts
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    assert scrape_counts(3) == [0, 1, 2]  # a scrape is counted once it is answered
    assert scrape_counts(1) == [0]        # the next start does not see the last one's counts
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("digitdraw-metrics-")] == []
