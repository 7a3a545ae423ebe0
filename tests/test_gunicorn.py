"""gunicorn.conf.py: settings from the environment, one BLAS thread per worker,
and a server that refuses to boot on a broken model instead of serving errors."""
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gunicorn.config import Config

from app.server_log import GunicornJsonLogger

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def load_config(**env):
    """Evaluate the config file in a fresh interpreter with exactly `env` added;
    returns its settings and the thread variables it leaves in the environment."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("HOST", "PORT", "WEB_CONCURRENCY", "WORKERS", "THREADS", "TIMEOUT") + THREAD_VARS}
    script = (
        "import json, os, runpy\n"
        f"c = runpy.run_path({str(CONFIG)!r})\n"
        "keys = ['bind', 'workers', 'threads', 'preload_app', 'timeout']\n"
        f"print(json.dumps({{'config': {{k: c[k] for k in keys}}, "
        f"'env': {{k: os.environ.get(k) for k in {list(THREAD_VARS)!r}}}}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**base, **env}, capture_output=True, text=True)
    if done.returncode:
        return done
    return json.loads(done.stdout)


def test_defaults():
    loaded = load_config()
    config = loaded["config"]
    assert config["bind"] == "0.0.0.0:8000"
    assert config["preload_app"] is True
    assert config["workers"] == len(os.sched_getaffinity(0))
    assert config["threads"] == 1
    assert loaded["env"] == {name: "1" for name in THREAD_VARS}


def test_port_and_workers_from_environment():
    assert load_config(PORT="9123", WEB_CONCURRENCY="3")["config"]["bind"] == "0.0.0.0:9123"
    assert load_config(WEB_CONCURRENCY="3")["config"]["workers"] == 3
    assert load_config(WORKERS="5")["config"]["workers"] == 5
    assert load_config(WEB_CONCURRENCY="2", WORKERS="5")["config"]["workers"] == 2


def test_operator_thread_settings_are_kept():
    assert load_config(OMP_NUM_THREADS="4")["env"]["OMP_NUM_THREADS"] == "4"


@pytest.mark.parametrize("env", [{"PORT": "http"}, {"WEB_CONCURRENCY": "0"}, {"WORKERS": "-2"}])
def test_nonsense_settings_stop_with_a_message(env):
    done = load_config(**env)
    assert done.returncode != 0
    assert next(iter(env)) in done.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path, **env):
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "w+b")
    server = subprocess.Popen([str(GUNICORN), "--config", str(CONFIG), "--bind", f"127.0.0.1:{port}",
                               "app:create_app()"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "WEB_CONCURRENCY": "1", **env})
    return server, port, tmp_path / "gunicorn.log"


@pytest.mark.slow
def test_serves_healthz_with_the_model_loaded(tmp_path):
    server, port, log = _start(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    body = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert body["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)
    # gunicorn's own messages and the app's, from boot to shutdown: one JSON object a line
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    said = {(line["logger"], line.get("message") or line.get("event")) for line in lines}
    assert ("digitdraw", "model_loaded") in said and ("gunicorn.error", "Shutting down: Master") in said
    # each line names the process that wrote it: the master, or the worker gunicorn booted
    (booted,) = [line for line in lines if line.get("message", "").startswith("Booting worker with pid: ")]
    worker = int(booted["message"].rsplit(" ", 1)[1])
    assert booted["logger"] == "gunicorn.error" and booted["pid"] == worker != server.pid
    (served,) = [line for line in lines if line.get("event") == "request"]
    assert served["path"] == "/healthz" and served["pid"] == worker
    assert {line["pid"] for line in lines if line.get("message") == "Shutting down: Master"} == {server.pid}


@pytest.mark.slow
def test_broken_model_stops_the_server_with_its_reason(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    server, _, log = _start(tmp_path, MODEL_PATH=str(broken))
    try:
        code = server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert code != 0
    text = log.read_text()
    assert "ModelFileError" in text and "broken.npz" in text


def test_gunicorns_logger_writes_json_lines_where_errorlog_says(tmp_path):
    config = Config()
    config.set("errorlog", str(tmp_path / "gunicorn.log"))
    # Someone else's handler on the same logger (pytest attaches its capture
    # handlers to every logger that does not propagate) keeps its own format.
    foreign = logging.StreamHandler(io.StringIO())
    foreign_format = logging.Formatter("%(levelname)s %(message)s")
    foreign.setFormatter(foreign_format)
    logging.getLogger("gunicorn.error").addHandler(foreign)
    try:
        logger = GunicornJsonLogger(config)
        assert foreign.formatter is foreign_format
    finally:
        logging.getLogger("gunicorn.error").removeHandler(foreign)
    logger.info("Booting worker with pid: %s", 4242)
    logger.warning("Worker %s timed out", 4242)
    lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines()]
    assert [(line["level"], line["logger"], line["message"]) for line in lines] == [
        ("info", "gunicorn.error", "Booting worker with pid: 4242"),
        ("warning", "gunicorn.error", "Worker 4242 timed out")]
    for handler in logger.error_log.handlers:
        handler.close()
