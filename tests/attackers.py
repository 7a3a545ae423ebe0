"""The clients of issue 13's attack, shared by the server and the image tests:
bodies announced and trickled a byte a second, and connections that sit idle."""
import http.client
import socket
import threading
from contextlib import ExitStack, contextmanager

ANSWER_DEADLINE_S = 60  # far beyond any healthy answer, even on a loaded CI machine


def slow_body(port, announced=20_000, sent=b"\x89PNG"):
    """A connection that announced a body and sent only its first bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_DEADLINE_S)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
                 b"Content-Length: %d\r\n\r\n" % announced + sent)
    return sock


def idle(port, after_one_request):
    """A connection that sends nothing, or one kept alive after one request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_DEADLINE_S)
    if after_one_request:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        response.read()
        if response.will_close:  # sent to a lighter worker (app/worker_balance.py): connect again, idle
            sock.close()
            sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_DEADLINE_S)
    return sock


def still_open(sock):
    """True while the server has not closed the connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


@contextmanager
def attack(port, slow=64, idle_count=64):
    """Hold `slow` trickling bodies (a byte a second) and `idle_count` idle
    connections (half of them after one request) for the block; yields the
    slow sockets."""
    with ExitStack() as stack:
        slow_socks = [stack.enter_context(slow_body(port)) for _ in range(slow)]
        for i in range(idle_count):
            stack.enter_context(idle(port, after_one_request=i % 2 == 1))
        stop = threading.Event()

        def trickle():
            while not stop.wait(1.0):
                for sock in slow_socks:
                    try:
                        sock.send(b"x")
                    except OSError:
                        pass
        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            yield slow_socks
        finally:
            stop.set()
            trickler.join()
