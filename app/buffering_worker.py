"""A gunicorn worker that reads each request whole before a thread serves it.

gunicorn's sync and gthread workers read a request in the worker or thread
that serves it, so a client that announces a body and then sends it a byte a
second, or not at all, holds that worker for as long as it likes: eight such
connections stopped the image's two sync workers (issue 13). An async worker
(gevent) survives them, but runs the CPU-bound /predict on its event loop,
where eight concurrent predictions queue behind each other (p99 over 1 s).

This worker keeps gthread's design (one selector loop accepting and watching
connections, a few threads running the app) and adds what a buffering proxy
such as nginx does in front of it: the loop reads every request, headers and
body, without blocking, into memory, and only a complete request reaches a
thread. A slow or stalled client then costs a socket and its buffer, never a
thread, and is cut off by deadlines:

- READ_TIMEOUT (default 20 s): time to send a whole request, headers and body,
  counted from its first byte. Past it the client gets 408 with a JSON error
  and the connection is closed.
- gunicorn's `keepalive` (5 s): how long a connection may sit without
  starting a request, new or kept alive, before it is closed.
- gunicorn's `worker_connections`: connections a worker holds at once, of
  every kind; past it the worker stops accepting and new connections wait in
  the listen backlog (`backlog`), then are refused by the kernel.
- READ_BUFFER_BYTES (default 64 MiB): bytes of requests a worker holds before
  a thread takes them up (arriving, or complete and waiting for a thread);
  past it the loop stops reading the connections that push it over until
  earlier requests are taken (their deadline keeps running), always letting
  one go on so that something completes.
- The app's MAX_BODY_BYTES: a longer body is refused with 413 before it is read;
  header sections over MAX_HEADER_BYTES get 431.

Requests without a body to compute on (GET, HEAD, OPTIONS: the page, its
assets, /healthz, /metrics, /models) run on a thread of their own, so a
health probe or a page load never queues behind predictions, whatever
THREADS is.

TLS or HTTP/2 cleartext settings would hand the loop bytes it cannot frame,
so with either this worker falls back to plain gthread behaviour.

Workers also keep about as many connections as each other (app/worker_balance.py
says why and how): one holding more lets a lighter one accept first, and sheds
a kept-alive connection now and then while it holds two or more above it.
"""
import json
import os
import selectors
import socket
import time
from collections import deque
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

from . import config as app_settings
from . import worker_balance
from .request_framing import Frame, RequestFrame

# A whole request, first byte to last, within 20 s: the page's canvas PNG is
# ~10 kB and a 5 MB photo still passes at 2 Mbit/s.
DEFAULT_READ_TIMEOUT_S = 20
# 64 MiB of unfinished requests per worker: a dozen bodies of the maximum size,
# or thousands of canvas PNGs, being received at once.
DEFAULT_READ_BUFFER_BYTES = 64 * 1024 * 1024
# Browsers send a few kB of headers; gunicorn's per-line limits would allow
# far more in total (50 fields of 8 kB), which nobody legitimate needs.
MAX_HEADER_BYTES = 64 * 1024
# A stopping worker (recycled after max_requests, or told to stop) no longer
# accepts, and gunicorn forks its replacement only once it has exited: so it
# gives requests still arriving 2 s to finish (any normal upload does), then
# answers the rest 503 "send it again", instead of waiting up to READ_TIMEOUT
# for slow clients while its share of new connections waits in the backlog.
STOP_READ_GRACE_S = 2.0
# How often the loop looks for expired deadlines.
REAP_INTERVAL_S = 0.25
RECV_BYTES = 64 * 1024
# Served on their own thread (see the module doc): nothing they do is CPU-heavy.
QUICK_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})

# Created in the master when gunicorn loads this worker class, so every worker
# forked from it shares the one table.
LOAD_BOARD = worker_balance.LoadBoard()

REASONS = {408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


def setting(name, default, environ=os.environ):
    """A positive whole number from the environment (READ_TIMEOUT, READ_BUFFER_BYTES)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


def size_text(size):
    """5 MB, 64 kB: as the app words its own limits."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size / 1024:g} kB" if size >= 1024 else f"{size} bytes"


def error_response(status, message):
    """A complete HTTP response with the contract's JSON error body; closes the connection."""
    body = json.dumps({"error": message}).encode()
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n{retry}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


class Reading:
    """A connection whose next request is still arriving."""

    __slots__ = ("conn", "frame", "deadline", "started", "paused", "continued")

    def __init__(self, conn, frame, idle_deadline):
        self.conn = conn
        self.frame = frame
        self.deadline = idle_deadline  # until the first byte; then the request deadline
        self.started = False           # a byte of this request has arrived
        self.paused = False            # not read while the worker's buffer budget is spent
        self.continued = False         # "100 Continue" already sent


class BufferingThreadWorker(ThreadWorker):
    """gthread, with requests read whole by the selector loop (see the module doc)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout = setting("READ_TIMEOUT", DEFAULT_READ_TIMEOUT_S)
        self.read_buffer_bytes = setting("READ_BUFFER_BYTES", DEFAULT_READ_BUFFER_BYTES)
        self.max_body_bytes = app_settings.from_env()["MAX_BODY_BYTES"]
        self.readings = set()
        self.paused = deque()
        self.buffered = 0          # bytes of every request not yet taken up by a thread
        self.queued = 0            # of which, complete requests waiting for a thread
        self.privileged = None     # the one reading that goes on over budget (see pause)
        self.next_reap = 0.0
        self.stop_reads_at = None  # set once the worker stops: STOP_READ_GRACE_S later
        self.buffering = not self.cfg.is_ssl and self.cfg.http2_cleartext in (None, "off")
        self.quick_pool = None
        # gunicorn builds a worker in the master, right before forking it: see LoadBoard.claim.
        self.balance_slot = LOAD_BOARD.claim()
        self.accept_resume_at = None  # accepting is held off until then (a lighter worker's turn)
        self.accept_now_until = 0.0   # after waiting, the next connection is taken at once
        self.recycles_postponed = 0

    def init_process(self):
        # In the worker, after the fork, like gthread's own pool.
        self.quick_pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="quick")
        self.publish_load()
        super().init_process()

    # -- balance between workers (app/worker_balance.py) --------------------------

    def publish_load(self):
        if self.balance_slot is None:
            return
        accepting = self.alive and self.nr_conns < self.worker_connections
        LOAD_BOARD.publish(self.balance_slot, self.nr_conns if accepting else worker_balance.NOT_ACCEPTING)

    def lightest_other(self):
        return None if self.balance_slot is None else LOAD_BOARD.lightest_other(self.balance_slot)

    def accept(self, listener):
        now = time.monotonic()
        if now >= self.accept_now_until and worker_balance.should_defer_accept(self.nr_conns, self.lightest_other()):
            self.accept_resume_at = now + worker_balance.ACCEPT_DEFER_S
            self.set_accept_enabled(False)
            return
        super().accept(listener)

    def set_accept_enabled(self, enabled):
        if enabled and self.accept_resume_at is not None:
            now = time.monotonic()
            if now < self.accept_resume_at:
                return  # gthread's loop asks every turn; the lighter worker's turn is not over
            self.accept_resume_at = None
            self.accept_now_until = now + worker_balance.ACCEPT_DEFER_S
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        self.publish_load()
        if self.accept_resume_at is not None:
            timeout = max(0.0, min(timeout, self.accept_resume_at - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def handle_request(self, req, conn):
        # In a thread: the answer says "Connection: close" (and gunicorn then closes),
        # so the client's next connection goes to a lighter worker.
        if self.alive and worker_balance.should_shed(self.nr_conns, self.lightest_other()):
            req.must_close = True
        # gunicorn recycles once nr reaches max_requests; not while another worker is restarting.
        if (self.alive and self.balance_slot is not None and self.nr + 1 >= self.max_requests
                and worker_balance.should_postpone_recycle(LOAD_BOARD.others_accepting(self.balance_slot),
                                                           self.cfg.workers, self.recycles_postponed)):
            self.max_requests += worker_balance.RECYCLE_POSTPONE
            self.recycles_postponed += 1
        return super().handle_request(req, conn)

    # -- the loop: every path to a thread passes through enqueue_req ----------

    def enqueue_req(self, conn):
        if not self.buffering or getattr(conn, "prebuffered", None) is not None:
            return super().enqueue_req(conn)
        self.start_reading(conn)

    def start_reading(self, conn):
        """Watch `conn` for its next request (a new connection, a kept-alive one,
        or bytes a client pipelined behind the previous request)."""
        frame = RequestFrame(MAX_HEADER_BYTES, self.max_body_bytes)
        reading = Reading(conn, frame, time.monotonic() + self.cfg.keepalive)
        conn.sock.setblocking(False)
        self.readings.add(reading)
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if leftover and not self.take_bytes(reading, leftover):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, reading))

    def on_request_bytes(self, reading, _sock):
        try:
            data = reading.conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self.drop(reading)
            return
        if self.take_bytes(reading, data) and self.buffered > self.read_buffer_bytes:
            self.pause(reading)

    def take_bytes(self, reading, data):
        """Add bytes to a request; False once the connection has left the loop."""
        if not reading.started:
            reading.started = True
            reading.deadline = time.monotonic() + self.read_timeout
        self.buffered += len(data)
        verdict = reading.frame.feed(data)
        if verdict is Frame.NEED_MORE:
            if reading.frame.expects_continue and not reading.continued:
                reading.continued = True
                self.send_quietly(reading.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return True
        if verdict in (Frame.COMPLETE, Frame.HANDOFF):
            self.hand_to_thread(reading)
        elif verdict is Frame.BODY_TOO_LARGE:
            self.refuse(reading, 413, f"The request body is larger than {size_text(self.max_body_bytes)}; "
                                      "send a smaller image.")
        else:
            self.refuse(reading, 431, f"The request headers are larger than {size_text(MAX_HEADER_BYTES)}; "
                                      "send fewer or shorter headers.")
        return False

    def hand_to_thread(self, reading):
        conn = reading.conn
        # Its bytes stay counted in the budget until a thread takes them (see
        # handle): requests queued for a thread are held in memory too.
        self.leave_loop(reading, release_bytes=False)
        conn.prebuffered = bytes(reading.frame.data)
        self.queued += len(conn.prebuffered)
        conn.data_ready = True  # gthread must not wait for more bytes first
        if reading.frame.method in QUICK_METHODS:
            served = self.quick_pool.submit(self.handle, conn)
            served.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))
        else:
            super().enqueue_req(conn)

    def handle(self, conn):
        """In a thread: put the buffered request where gunicorn's parser reads first."""
        data, conn.prebuffered = getattr(conn, "prebuffered", None), None
        if data is not None:
            self.method_queue.defer(self.release_bytes, len(data), True)
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(data)
        return super().handle(conn)

    # -- limits ----------------------------------------------------------------

    def pause(self, reading):
        """Stop reading a connection while the worker's buffer budget is spent.

        Threads taking up queued requests free the budget again. With none
        queued, one reading goes on regardless, so that some request always
        completes: memory stays within the budget plus one request.
        """
        if reading is self.privileged:
            return
        if not self.queued and self.privileged not in self.readings:
            self.privileged = reading
            return
        self.poller.unregister(reading.conn.sock)
        reading.paused = True
        self.paused.append(reading)

    def resume_paused(self):
        while self.paused and (self.buffered <= self.read_buffer_bytes or
                               (not self.queued and self.privileged not in self.readings)):
            reading = self.paused.popleft()
            if reading in self.readings and reading.paused:
                reading.paused = False
                self.poller.register(reading.conn.sock, selectors.EVENT_READ,
                                     partial(self.on_request_bytes, reading))
                if self.buffered > self.read_buffer_bytes:
                    self.privileged = reading

    def murder_pending(self):
        """Called by gthread's loop at least once a second: also cut off expired requests."""
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_reap:
            return
        self.next_reap = now + REAP_INTERVAL_S
        if not self.alive and self.stop_reads_at is None:
            self.stop_reads_at = now + STOP_READ_GRACE_S
        stopped_waiting = self.stop_reads_at is not None and now >= self.stop_reads_at
        for reading in list(self.readings):
            if not reading.started:
                # Idle: closed without a word, as keep-alive expiry does; a
                # stopping worker does not wait for a request that may never come.
                if reading.deadline <= now or not self.alive:
                    self.drop(reading)
            elif reading.deadline <= now:
                self.refuse(reading, 408, f"The request was not received within {self.read_timeout:g} "
                                          "seconds; send it again on a better connection.")
            elif stopped_waiting:
                self.refuse(reading, 503, "The server is restarting and this request had not fully arrived; "
                                          "send it again.")

    def refuse(self, reading, status, message):
        """Answer from the loop and close, without reading the rest of the request."""
        sock = reading.conn.sock
        self.send_quietly(sock, error_response(status, message))
        try:
            # FIN after the answer; then swallow what the client already sent, so
            # closing does not reset the connection before it has read the answer.
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(RECV_BYTES):
                pass
        except OSError:
            pass
        self.drop(reading)

    @staticmethod
    def send_quietly(sock, data):
        """Best effort: a client that does not read does not get to block the loop."""
        try:
            sock.send(data)
        except OSError:
            pass

    def release_bytes(self, size, queued=False):
        """On the loop's thread: bytes no longer held for a request; read on."""
        self.buffered -= size
        if queued:
            self.queued -= size
        self.resume_paused()

    def leave_loop(self, reading, release_bytes=True):
        self.readings.discard(reading)
        if reading is self.privileged:
            self.privileged = None
        if not reading.paused:
            try:
                self.poller.unregister(reading.conn.sock)
            except (KeyError, ValueError, OSError):
                pass
        reading.paused = False
        if release_bytes:
            self.release_bytes(len(reading.frame))

    def drop(self, reading):
        self.leave_loop(reading)
        self.nr_conns -= 1
        reading.conn.close()

    def run(self):
        try:
            super().run()
        finally:
            for reading in list(self.readings):
                self.drop(reading)
            if self.quick_pool is not None:
                self.quick_pool.shutdown(wait=False)
            if self.balance_slot is not None:
                LOAD_BOARD.release(self.balance_slot)
