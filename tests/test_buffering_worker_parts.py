"""The slow-client worker's pure parts, in process: its settings, how it words a
size, and the raw HTTP error it writes itself. test_slow_clients.py tests the
worker whole, through real gunicorn processes, which mutation testing cannot
trace; these can be."""
import http.client
import io
import json
import os
import selectors
import socket
import time
from collections import deque
from concurrent import futures

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn

from app import buffering_worker, worker_balance
from app.buffering_worker import (
    REAP_INTERVAL_S,
    STOP_READ_GRACE_S,
    BufferingThreadWorker,
    error_response,
    setting,
    size_text,
)


def test_a_setting_missing_or_blank_is_its_default():
    assert setting("READ_TIMEOUT", 20, environ={}) == 20
    assert setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": "  "}) == 20


def test_a_setting_is_read_as_a_whole_number_from_1():
    assert setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": " 7 "}) == 7
    assert setting("READ_BUFFER_BYTES", 64, environ={"READ_BUFFER_BYTES": "1"}) == 1


@pytest.mark.parametrize("raw, message", [
    ("soon", "READ_TIMEOUT must be a whole number, got 'soon'"),
    ("2.5", "READ_TIMEOUT must be a whole number, got '2.5'"),
    ("0", "READ_TIMEOUT must be at least 1, got 0"),
    ("-4", "READ_TIMEOUT must be at least 1, got -4"),
])
def test_a_setting_that_is_no_count_stops_the_server_with_its_name(raw, message):
    with pytest.raises(SystemExit) as stopped:
        setting("READ_TIMEOUT", 20, environ={"READ_TIMEOUT": raw})
    assert str(stopped.value) == message


@pytest.mark.parametrize("size, text", [
    (64 * 1024 * 1024, "64 MB"), (5 * 1024 * 1024, "5 MB"), (1024 * 1024, "1 MB"),
    (1536 * 1024, "1.5 MB"), (1024 * 1024 - 1024, "1023 kB"), (1536, "1.5 kB"),
    (1024, "1 kB"), (1023, "1023 bytes"), (0, "0 bytes"),
])
def test_sizes_are_worded_as_the_app_words_its_limits(size, text):
    assert size_text(size) == text


class _Received(io.BytesIO):
    """Bytes as http.client reads them from a socket."""

    def makefile(self, *args, **kwargs):
        return self


def _parse(raw):
    response = http.client.HTTPResponse(_Received(raw))
    response.begin()
    return response, response.read()


@pytest.mark.parametrize("status, reason", [
    (408, "Request Timeout"), (413, "Content Too Large"), (431, "Request Header Fields Too Large"),
    (503, "Service Unavailable"),
])
def test_the_worker_s_own_errors_are_complete_json_responses(status, reason):
    message = 'The request took too long to arrive; send it "whole".'
    response, body = _parse(error_response(status, message))
    assert (response.status, response.reason, response.version) == (status, reason, 11)
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Connection") == "close"
    assert int(response.getheader("Content-Length")) == len(body)
    assert json.loads(body) == {"error": message}
    assert response.getheader("Retry-After") == ("1" if status == 503 else None)


# ------------------------------------------------------------------ the loop, in process
# The worker built as gunicorn builds it in the master, with a selector of its
# own, fed through socket pairs: each test plays the selector loop by calling
# the handler it would call, and reads what the client end received.

class _Pool:
    """Stands in for gthread's thread pool: records what would run, runs nothing."""

    def __init__(self):
        self.submitted = []
        self.futures = []

    def submit(self, function, conn):
        self.submitted.append((function, conn))
        self.futures.append(futures.Future())
        return self.futures[-1]


def _echo(environ, start_response):
    """A WSGI app that says what it was sent."""
    body = environ["wsgi.input"].read()
    answer = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {body.decode()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


@pytest.fixture
def board(monkeypatch):
    """A load board of the test's own, as the master's would be for its workers."""
    fresh = worker_balance.LoadBoard()
    monkeypatch.setattr(buffering_worker, "LOAD_BOARD", fresh)
    return fresh


@pytest.fixture
def worker(monkeypatch, board):
    monkeypatch.setenv("READ_TIMEOUT", "20")
    monkeypatch.setenv("READ_BUFFER_BYTES", "1000")
    monkeypatch.setenv("MAX_BODY_BYTES", str(5 * 1024 * 1024))
    cfg = Config()
    cfg.set("workers", 2)
    built = BufferingThreadWorker(1, os.getpid(), [], None, 30, cfg, Logger(cfg))
    built.poller = selectors.DefaultSelector()
    built.tpool, built.quick_pool = _Pool(), _Pool()
    built.wsgi = _echo
    built.method_queue.init()
    yield built
    for reading in list(built.readings):
        reading.conn.close()
    built.method_queue.close()
    built.poller.close()
    built.tmp.close()


@pytest.fixture
def connect(worker):
    """connect() -> (the client's socket, the worker's Reading of the server end)."""
    opened = []

    def connect():
        server_end, client_end = socket.socketpair()
        opened.extend((server_end, client_end))
        client_end.settimeout(5)
        conn = TConn(worker.cfg, server_end, ("127.0.0.1", 50000), ("127.0.0.1", 8000))
        before = set(worker.readings)
        worker.nr_conns += 1
        worker.enqueue_req(conn)  # gthread's entry for a new or kept-alive connection
        (reading,) = worker.readings - before
        return client_end, reading

    yield connect
    for sock in opened:
        sock.close()


def _arrive(worker, reading, client, data):
    """The client sends `data`; the loop reads while this connection is watched."""
    client.sendall(data)
    while reading in worker.readings and not reading.paused:
        key = worker.poller.get_map().get(reading.conn.sock.fileno())
        if key is None or not worker.poller.select(timeout=0.2):
            break
        worker.on_request_bytes(reading, None)


def _answer(client):
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return _parse(received)


def _expire(worker, reading):
    reading.deadline = time.monotonic() - 1
    worker.next_reap = 0.0
    worker.murder_pending()


def test_a_whole_request_goes_to_a_thread_with_its_bytes_counted_until_taken(worker, connect):
    client, reading = connect()
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345"
    _arrive(worker, reading, client, request)
    assert reading not in worker.readings
    ((function, conn),) = worker.tpool.submitted
    assert conn is reading.conn and conn.prebuffered == request and conn.data_ready
    assert (worker.buffered, worker.queued, worker.quick_pool.submitted) == (len(request), len(request), [])
    worker.release_bytes(len(request), queued=True)
    assert (worker.buffered, worker.queued) == (0, 0)


def test_a_get_runs_on_the_quick_thread_and_is_finished_by_the_loop(worker, connect):
    client, reading = connect()
    finished = []
    worker.finish_request = lambda conn, fut: finished.append((conn, fut))
    _arrive(worker, reading, client, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    ((function, conn),) = worker.quick_pool.submitted
    assert function == worker.handle and conn is reading.conn and worker.tpool.submitted == []
    (future,) = worker.quick_pool.futures
    future.set_result(True)  # the quick thread is done with it
    worker.method_queue.run_callbacks(None)
    assert finished == [(conn, future)]


def test_requests_waiting_for_a_thread_are_all_counted(worker, connect):
    requests = [b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n12",
                b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n123"]
    for request in requests:
        client, reading = connect()
        _arrive(worker, reading, client, request)
    total = sum(map(len, requests))
    assert (worker.queued, worker.buffered, len(worker.tpool.submitted)) == (total, total, 2)


def test_a_request_pipelined_behind_another_is_read_from_what_is_left(worker, connect):
    """gthread gives a kept-alive connection back to the loop (enqueue_req);
    bytes the client sent behind the first request are already in its parser."""
    first = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
    second = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n22"
    client, reading = connect()
    response, body = _served(worker, reading, client, first + second)
    assert body == b"POST /a 1"
    worker.enqueue_req(reading.conn)
    ((function, conn),) = worker.tpool.submitted
    assert conn is reading.conn and conn.prebuffered == second
    assert worker.queued == len(second)


def test_a_client_that_leaves_is_dropped(worker, connect):
    client, reading = connect()
    client.close()
    worker.on_request_bytes(reading, None)
    assert (worker.readings, worker.nr_conns) == (set(), 0)
    assert reading.conn.sock.fileno() == -1  # closed


def test_a_body_over_the_limit_is_answered_413_before_it_is_read(worker, connect):
    client, reading = connect()
    _arrive(worker, reading, client, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 6000000\r\n\r\n")
    response, body = _answer(client)
    assert response.status == 413
    assert json.loads(body)["error"] == "The request body is larger than 5 MB; send a smaller image."
    assert (reading in worker.readings, worker.nr_conns, worker.buffered) == (False, 0, 0)


def test_headers_over_64_kb_are_answered_431(worker, connect):
    client, reading = connect()
    _arrive(worker, reading, client, b"GET / HTTP/1.1\r\nX-Long: " + b"a" * (65 * 1024))
    response, body = _answer(client)
    assert response.status == 431
    assert json.loads(body)["error"] == ("The request headers are larger than 64 kB; "
                                         "send fewer or shorter headers.")
    assert (worker.nr_conns, worker.buffered) == (0, 0)


def test_a_client_asking_to_continue_is_told_once(worker, connect):
    client, reading = connect()
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    _arrive(worker, reading, client, head)
    _arrive(worker, reading, client, b"12345")
    client.settimeout(0.5)
    assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    with pytest.raises(TimeoutError):
        client.recv(100)
    assert reading in worker.readings and worker.buffered == len(head) + 5


def test_a_request_past_read_timeout_is_answered_408(worker, connect):
    client, reading = connect()
    _arrive(worker, reading, client, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123")
    _expire(worker, reading)
    response, body = _answer(client)
    assert response.status == 408
    assert json.loads(body)["error"] == ("The request was not received within 20 seconds; "
                                         "send it again on a better connection.")
    assert (worker.readings, worker.nr_conns, worker.buffered) == (set(), 0, 0)


def test_an_idle_connection_past_keepalive_is_closed_without_a_word(worker, connect):
    client, reading = connect()
    waiting_since = time.monotonic()
    worker.next_reap = 0.0
    worker.murder_pending()
    assert reading in worker.readings  # its keep-alive deadline is still ahead
    assert reading.deadline >= waiting_since + worker.cfg.keepalive - 1
    _expire(worker, reading)
    assert client.recv(100) == b""
    assert (worker.readings, worker.nr_conns) == (set(), 0)


def test_a_stopping_worker_waits_its_grace_then_answers_unfinished_requests_503(worker, connect):
    client, reading = connect()
    idle_client, idle = connect()
    _arrive(worker, reading, client, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123")
    worker.alive = False
    worker.next_reap = 0.0
    worker.murder_pending()
    assert idle not in worker.readings and idle_client.recv(100) == b""  # idle: closed at once
    assert reading in worker.readings  # arriving: given STOP_READ_GRACE_S
    assert worker.stop_reads_at == pytest.approx(time.monotonic() + STOP_READ_GRACE_S, abs=0.5)
    worker.stop_reads_at = time.monotonic() - 0.01
    worker.next_reap = 0.0
    worker.murder_pending()
    response, body = _answer(client)
    assert (response.status, response.getheader("Retry-After")) == (503, "1")
    assert json.loads(body)["error"] == ("The server is restarting and this request had not fully arrived; "
                                         "send it again.")


def test_deadlines_are_looked_at_every_reap_interval_not_every_turn(worker, connect):
    client, reading = connect()
    worker.next_reap = 0.0
    worker.murder_pending()
    assert worker.next_reap == pytest.approx(time.monotonic() + REAP_INTERVAL_S, abs=0.1)
    reading.deadline = time.monotonic() - 1
    worker.murder_pending()  # within the interval: not looked at yet
    assert reading in worker.readings
    worker.next_reap = time.monotonic() - 0.01
    worker.murder_pending()
    assert reading not in worker.readings


def test_over_the_read_budget_one_reading_goes_on_and_the_rest_wait(worker, connect):
    """READ_BUFFER_BYTES is 1000 here: past it, the first connection to push
    over goes on (something must complete), later ones are paused until
    bytes are released."""
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    first_client, first = connect()
    second_client, second = connect()
    _arrive(worker, first, first_client, head + b"a" * 1200)
    assert worker.privileged is first and not first.paused
    _arrive(worker, second, second_client, head + b"b" * 100)
    assert second.paused and list(worker.paused) == [second]
    assert second.conn.sock.fileno() not in worker.poller.get_map()
    worker.drop(first)  # its bytes leave the budget
    assert worker.privileged is None and first.conn.sock.fileno() == -1
    assert second.paused is False and worker.paused == deque()
    assert worker.buffered == len(head) + 100
    _arrive(worker, second, second_client, b"b" * 50)  # read again, by the loop's own callback
    assert worker.buffered == len(head) + 150


def test_a_paused_reading_that_leaves_is_no_longer_paused(worker, connect):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    first_client, first = connect()
    second_client, second = connect()
    _arrive(worker, first, first_client, head + b"a" * 1200)
    _arrive(worker, second, second_client, head + b"b" * 100)
    assert second.paused
    worker.drop(second)
    assert (second.paused, second in worker.readings, worker.buffered) == (False, False, len(head) + 1200)
    worker.drop(first)
    assert (worker.buffered, worker.readings, dict(worker.poller.get_map())) == (0, set(), {})


def test_up_to_the_read_budget_nothing_is_held_back(worker, connect):
    client, reading = connect()
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    _arrive(worker, reading, client, head + b"a" * (1000 - len(head)))
    assert worker.buffered == 1000 and worker.privileged is None and not reading.paused


def test_a_whole_request_over_the_budget_still_goes_to_its_thread(worker, connect):
    client, reading = connect()
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1200\r\n\r\n"
    _arrive(worker, reading, client, head + b"a" * 1200)
    assert len(worker.tpool.submitted) == 1
    assert (worker.privileged, list(worker.paused)) == (None, [])


def _served(worker, reading, client, request):
    """The request arrives whole, the thread it was handed to serves it, and the
    loop runs what the thread left for it; returns the client's parsed answer."""
    _arrive(worker, reading, client, request)
    ((function, conn),) = worker.tpool.submitted
    worker.tpool.submitted.clear()
    assert function == worker.handle and conn is reading.conn
    function(conn)
    response = http.client.HTTPResponse(client)
    response.begin()
    body = response.read()
    worker.method_queue.run_callbacks(None)
    return response, body


def test_a_thread_serves_the_request_from_its_buffered_bytes_then_frees_them(worker, connect):
    client, reading = connect()
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345"
    response, body = _served(worker, reading, client, request)
    assert (response.status, body) == (200, b"POST /predict 12345")
    assert response.getheader("Connection") != "close"
    assert (worker.buffered, worker.queued, reading.conn.prebuffered) == (0, 0, None)


def test_a_worker_two_connections_above_another_closes_after_answering(worker, connect, board):
    peer = board.claim()
    client, reading = connect()
    worker.nr_conns = 2
    board.publish(peer, 1)  # one fewer: keep the connection
    response, _ = _served(worker, reading, client, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1")
    assert response.getheader("Connection") != "close"
    second_client, second = connect()
    worker.nr_conns = 2
    board.publish(peer, 0)  # two fewer: this client's next connection should go there
    response, _ = _served(worker, second, second_client,
                          b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1")
    assert response.getheader("Connection") == "close"


def test_a_recycle_waits_while_the_other_worker_is_not_accepting(worker, connect, board):
    peer = board.claim()  # claimed, not yet accepting: a worker that is starting
    client, reading = connect()
    worker.max_requests = worker.nr + 1
    _served(worker, reading, client, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1")
    assert (worker.max_requests, worker.recycles_postponed, worker.alive) == (
        1 + worker_balance.RECYCLE_POSTPONE, 1, True)
    board.publish(peer, 0)  # accepting now: the recycle goes ahead
    worker.max_requests = worker.nr + 1
    second_client, second = connect()
    _served(worker, second, second_client, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1")
    assert (worker.recycles_postponed, worker.alive) == (1, False)


# ------------------------------------------------------------------ balance between workers

def test_the_worker_publishes_its_connections_while_it_accepts(worker, board):
    peer = board.claim()
    board.publish(peer, 0)
    worker.nr_conns = 3
    worker.publish_load()
    assert board.lightest_other(peer) == 3
    worker.nr_conns = worker.worker_connections  # full: takes no more
    worker.publish_load()
    assert board.lightest_other(peer) is None
    worker.nr_conns, worker.alive = 3, False  # stopping
    worker.publish_load()
    assert board.lightest_other(peer) is None


@pytest.fixture
def listener(worker):
    sock = socket.create_server(("127.0.0.1", 0))
    worker.sockets = [sock]
    yield sock
    sock.close()


@pytest.fixture
def knocking(worker, board, listener):
    """knocking(peer_holds) -> a client waiting to be accepted by the worker, which
    holds one connection and accepts, while another worker holds `peer_holds`."""
    clients = []

    def knock(peer_holds):
        board.publish(board.claim(), peer_holds)
        worker.nr_conns = 1
        worker.set_accept_enabled(True)
        clients.append(socket.create_connection(listener.getsockname(), timeout=5))
        return clients[-1]

    yield knock
    for client in clients:
        client.close()


def test_a_lighter_worker_gets_the_next_connection_then_this_one_takes_its_turn(worker, listener, knocking):
    knocking(peer_holds=0)
    worker.accept(listener)  # the peer holds fewer: let it accept
    assert worker.nr_conns == 1 and listener.fileno() not in worker.poller.get_map()
    assert worker.accept_resume_at == pytest.approx(time.monotonic() + worker_balance.ACCEPT_DEFER_S, abs=0.1)
    worker.set_accept_enabled(True)  # gthread asks every turn; the peer's turn is not over
    assert listener.fileno() not in worker.poller.get_map()
    worker.accept_resume_at = time.monotonic() - 0.001
    worker.set_accept_enabled(True)
    assert listener.fileno() in worker.poller.get_map() and worker.accept_resume_at is None
    worker.accept(listener)  # having waited, it takes the next connection even so
    assert worker.nr_conns == 2 and len(worker.readings) == 1


def test_a_worker_no_heavier_than_the_others_accepts_at_once(worker, listener, knocking):
    knocking(peer_holds=1)
    worker.accept(listener)
    assert (worker.nr_conns, len(worker.readings), worker.accept_resume_at) == (2, 1, None)
