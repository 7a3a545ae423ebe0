"""Slow and idle clients against the real server, started the README way
(gunicorn with gunicorn.conf.py): normal requests are still answered while
they hold connections, a stalled body is cut off with 408 after READ_TIMEOUT
leaving nothing behind, and MAX_CONNECTIONS bounds what a worker holds.

No timing asserts: every wait has a generous deadline that only a stuck
server misses (issue 13: with sync workers these requests got no answer).
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from bench.payloads import canvas_png
from tests.attackers import ANSWER_DEADLINE_S, attack, idle, slow_body, still_open

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).parent / "gunicorn"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log

    def workers(self):
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def connections_held(self):
        """Client connections the workers hold open (their sockets less the listener)."""
        held = -len(self.workers())
        for pid in self.workers():
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    held += os.readlink(fd).startswith("socket:")
                except OSError:
                    pass
        return held

    def wait_connections_held(self, expected):
        """connections_held() once it equals `expected`, or its last value at the deadline."""
        deadline = time.monotonic() + ANSWER_DEADLINE_S
        while (held := self.connections_held()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return held

    def get(self, path="/healthz"):
        return request(self.port, "GET", path)

    def predict(self):
        return request(self.port, "POST", "/predict", canvas_png(), {"Content-Type": "image/png"})


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_DEADLINE_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@contextmanager
def gunicorn(tmp_path, **env):
    """`gunicorn --config gunicorn.conf.py 'app:create_app()'`, bound to loopback."""
    port = _free_port()
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(GUNICORN), "--config", str(CONFIG), "--bind", f"127.0.0.1:{port}",
                                 "app:create_app()"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **env})
    server = Server(proc, port, log_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if server.get()[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_until_closed(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.mark.slow
def test_normal_requests_are_answered_while_slow_and_idle_clients_hold_connections(tmp_path):
    """The issue's attack: 64 slow bodies trickling a byte a second and 64 idle
    connections, against the image's two workers; health checks and predictions
    in between must all be answered."""
    with gunicorn(tmp_path, WEB_CONCURRENCY="2") as server, attack(server.port) as slow:
        answers = []
        for _ in range(6):
            answers.append(server.get())
            answers.append(server.predict())
        assert [status for status, _ in answers] == [200] * 12
        assert all(body["status"] == "ok" for _, body in answers[0::2])
        assert all(body["digit"] == 7 for _, body in answers[1::2])
        # They were answered beside the attack, not after it had been cut off.
        assert all(still_open(sock) for sock in slow)


@pytest.mark.slow
def test_a_stalled_body_gets_408_after_read_timeout_and_leaves_nothing_behind(tmp_path):
    """One worker with one thread: if the stalled client held it, nothing else
    would be served until the timeout."""
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", THREADS="1", READ_TIMEOUT="3") as server:
        stalled = slow_body(server.port)
        assert server.predict()[0] == 200  # the worker is free while the body is awaited
        answer = read_until_closed(stalled)  # returns once the server closes it
        stalled.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"Content-Type: application/json" in head
        assert "3 seconds" in json.loads(body)["error"]
        assert server.wait_connections_held(0) == 0
        assert server.get()[0] == 200


@pytest.mark.slow
def test_a_recycled_worker_answers_a_stalled_body_503_and_its_replacement_serves(tmp_path):
    """A worker recycled after MAX_REQUESTS stops accepting until it exits; it
    must not wait READ_TIMEOUT (or gunicorn's 20 s grace) for a stalled body,
    or its share of the traffic waits in the backlog meanwhile (with both
    workers recycled together, the whole server did, for 5-10 s)."""
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", THREADS="1", MAX_REQUESTS="2", READ_TIMEOUT="120") as server:
        first_worker = server.workers()
        stalled = slow_body(server.port)
        stalled.settimeout(ANSWER_DEADLINE_S)  # 408 would take 120 s; gunicorn gives up after 20 s
        answers = [server.predict()[0] for _ in range(4)]  # the 2nd or 3rd recycles the worker
        answer = read_until_closed(stalled)
        stalled.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer
        assert b"Retry-After: 1" in head and b"Content-Type: application/json" in head
        assert "send it again" in json.loads(body)["error"]
        assert answers == [200] * 4
        assert server.get()[0] == 200
        assert server.workers() != first_worker


@pytest.mark.slow
def test_a_health_check_does_not_queue_behind_predictions(tmp_path):
    """One worker, one prediction thread, 40 predictions waiting for it: /healthz
    (and any GET) runs on its own thread, so it is answered while most of them
    still wait, not after all of them."""
    body = canvas_png()
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", THREADS="1") as server, ExitStack() as stack:
        finished, lock = [], threading.Lock()

        def answer(sock, name):
            response = http.client.HTTPResponse(sock)
            response.begin()
            response.read()
            with lock:
                finished.append((name, response.status))

        uploads = [stack.enter_context(slow_body(server.port, announced=len(body), sent=body)) for _ in range(40)]
        readers = [threading.Thread(target=answer, args=(sock, "predict")) for sock in uploads]
        [reader.start() for reader in readers]
        deadline = time.monotonic() + ANSWER_DEADLINE_S
        while not finished and time.monotonic() < deadline:  # the thread is busy: the rest are queued
            time.sleep(0.001)
        probe = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_DEADLINE_S))
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        answer(probe, "healthz")
        [reader.join(ANSWER_DEADLINE_S) for reader in readers]
        assert sorted(finished) == sorted([("healthz", 200)] + [("predict", 200)] * 40)
        predictions_before = [name for name, _ in finished].index("healthz")
        assert predictions_before < 20, f"/healthz waited for {predictions_before} of 40 predictions"


@pytest.mark.slow
def test_an_idle_connection_is_closed_after_keepalive(tmp_path):
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", KEEPALIVE="2") as server:
        silent, kept = idle(server.port, after_one_request=False), idle(server.port, after_one_request=True)
        assert read_until_closed(silent) == b""  # closed without a word
        assert read_until_closed(kept) == b""
        silent.close(), kept.close()
        assert server.wait_connections_held(0) == 0


@pytest.mark.slow
def test_a_body_over_the_limit_is_refused_before_it_is_sent(tmp_path):
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", MAX_BODY_BYTES="100000") as server:
        sock = slow_body(server.port, announced=100_001, sent=b"")
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
        sock.close()
        assert head.startswith(b"HTTP/1.1 413 ")
        assert "larger than" in json.loads(body)["error"]


@pytest.mark.slow
def test_requests_larger_together_than_the_read_buffer_are_all_served(tmp_path):
    """Six 100 kB uploads arriving at once against a 50 kB budget: reading pauses
    and resumes, and every one of them is answered (none waits for a 408)."""
    body = canvas_png() + bytes(100_000)
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", THREADS="1", READ_BUFFER_BYTES="50000",
                  READ_TIMEOUT="60") as server, ExitStack() as stack:
        uploads = [stack.enter_context(slow_body(server.port, announced=len(body), sent=body[:30_000]))
                   for _ in range(6)]
        for sock in uploads:
            sock.sendall(body[30_000:])
        answers = []
        for sock in uploads:
            response = http.client.HTTPResponse(sock)
            response.begin()
            answers.append((response.status, json.loads(response.read())))
        assert [status for status, _ in answers] == [200] * 6
        assert all(answer["digit"] == 7 for _, answer in answers)


@pytest.mark.slow
def test_connections_beyond_max_connections_wait_outside_the_worker(tmp_path):
    """A flood of connections is bounded by MAX_CONNECTIONS per worker, not by
    memory; once they go, the server serves as before."""
    with gunicorn(tmp_path, WEB_CONCURRENCY="1", MAX_CONNECTIONS="20", KEEPALIVE="30") as server:
        server.wait_connections_held(0)
        with ExitStack() as stack:
            flood = [stack.enter_context(idle(server.port, after_one_request=False)) for _ in range(60)]
            assert server.wait_connections_held(20) == 20
            time.sleep(1.0)  # time to accept more, if it would
            assert server.connections_held() == 20
            assert len(flood) == 60
        assert server.get()[0] == 200
        assert server.wait_connections_held(0) == 0


def _config(**env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("KEEPALIVE", "MAX_CONNECTIONS", "READ_TIMEOUT", "READ_BUFFER_BYTES", "THREADS",
                         "MAX_REQUESTS")}
    script = ("import json, runpy\n"
              f"c = runpy.run_path({str(CONFIG)!r})\n"
              "print(json.dumps({k: c[k] for k in ('worker_class', 'threads', 'keepalive', 'worker_connections',"
              " 'max_requests', 'max_requests_jitter')}))")
    return subprocess.run([sys.executable, "-c", script], env={**base, **env}, capture_output=True, text=True)


def test_settings_for_slow_clients_come_from_the_environment():
    defaults = json.loads(_config().stdout)
    assert defaults == {"worker_class": "app.buffering_worker.BufferingThreadWorker", "threads": 1,
                        "keepalive": 5, "worker_connections": 1000, "max_requests": 50000,
                        "max_requests_jitter": 25000}
    chosen = json.loads(_config(KEEPALIVE="2", MAX_CONNECTIONS="50", THREADS="2", MAX_REQUESTS="10").stdout)
    assert (chosen["keepalive"], chosen["worker_connections"], chosen["threads"]) == (2, 50, 2)
    assert (chosen["max_requests"], chosen["max_requests_jitter"]) == (10, 5)


@pytest.mark.parametrize("name", ["READ_TIMEOUT", "READ_BUFFER_BYTES", "MAX_CONNECTIONS", "KEEPALIVE", "MAX_REQUESTS"])
def test_nonsense_slow_client_settings_stop_the_server_with_a_message(name):
    done = _config(**{name: "soon"})
    assert done.returncode != 0 and name in done.stderr
