"""Workers share the connections evenly (app/worker_balance.py): the shared
table across a real fork, the decisions, and the real server keeping eight
kept-alive clients split 4/4, also after one worker was stopped while they
connected. No timing asserts: deadlines only catch a stuck server."""
import http.client
import multiprocessing
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from app import worker_balance
from app.worker_balance import NOT_ACCEPTING, LoadBoard
from tests.test_slow_clients import gunicorn

FORK = multiprocessing.get_context("fork")


def _worker(board, slot, held, go_on):
    board.publish(slot, held)
    go_on.wait(60)


@contextmanager
def other_workers(board, held_by_slot):
    """Real other processes publishing into the shared table, as forked workers do;
    they exit when the block ends (their slots then belong to dead processes)."""
    children = []
    try:
        for slot, held in held_by_slot.items():
            go_on = FORK.Event()
            child = FORK.Process(target=_worker, args=(board, slot, held, go_on))
            child.start()
            children.append((child, go_on))
            deadline = time.monotonic() + 30
            while board._read(slot)[0] != child.pid:
                assert time.monotonic() < deadline, "the child never published"
                time.sleep(0.01)
        yield
    finally:
        for child, go_on in children:
            go_on.set()
            child.join(30)


def test_a_lone_worker_sees_no_one_and_is_never_held_back():
    board = LoadBoard(slots=4)
    slot = board.claim()
    board.publish(slot, 7)
    assert board.lightest_other(slot) is None and board.others_accepting(slot) == 0
    assert not worker_balance.should_defer_accept(7, None) and not worker_balance.should_shed(7, None)


def test_workers_see_each_other_across_a_fork_and_a_dead_one_frees_its_slot():
    board = LoadBoard(slots=4)
    mine, theirs = board.claim(), board.claim()
    assert mine != theirs
    # Claimed but not started: held by the master, counted as not accepting.
    assert board.lightest_other(mine) is None and board.others_accepting(mine) == 0
    with other_workers(board, {theirs: 3}):
        board.publish(mine, 5)
        assert board.lightest_other(mine) == 3 and board.others_accepting(mine) == 1
        assert board.lightest_other(theirs) == 5
    # Its process is gone: ignored, and its slot is the next one claimed.
    assert board.lightest_other(mine) is None and board.others_accepting(mine) == 0
    assert board.claim() == theirs


def test_a_worker_that_does_not_accept_is_neither_waited_for_nor_counted():
    board = LoadBoard(slots=4)
    mine, theirs = board.claim(), board.claim()
    with other_workers(board, {theirs: NOT_ACCEPTING}):
        board.publish(mine, 5)
        assert board.lightest_other(mine) is None and board.others_accepting(mine) == 0


def test_the_lightest_of_several_others_is_the_one_compared_with():
    board = LoadBoard(slots=6)
    mine = board.claim()
    others = [board.claim() for _ in range(3)]
    with other_workers(board, dict(zip(others, (4, 1, 6)))):
        board.publish(mine, 2)
        assert board.lightest_other(mine) == 1 and board.others_accepting(mine) == 3


def test_free_and_dead_slots_in_between_do_not_hide_the_workers_after_them():
    board = LoadBoard(slots=6)
    mine, freed, dead, live = (board.claim() for _ in range(4))
    board.release(freed)  # a worker that exited cleanly
    with other_workers(board, {dead: 1}):
        pass              # one killed without releasing
    with other_workers(board, {live: 2}):
        board.publish(mine, 5)
        # counted first: lightest_other also clears the dead slot it walks past
        assert board.others_accepting(mine) == 1 and board.lightest_other(mine) == 2


def test_a_worker_that_stopped_publishing_is_treated_as_not_accepting():
    """A frozen worker (stopped, or its loop starved) must not draw every connection toward it."""
    board = LoadBoard(slots=4, stale_after_s=0.2)
    mine, theirs = board.claim(), board.claim()
    with other_workers(board, {theirs: 1}):  # publishes once, then only waits
        board.publish(mine, 5)
        assert board.lightest_other(mine) == 1 and board.others_accepting(mine) == 1
        time.sleep(0.4)
        board.publish(mine, 5)
        assert board.lightest_other(mine) is None and board.others_accepting(mine) == 0


def test_a_released_slot_is_free_again():
    board = LoadBoard(slots=2)
    first, second = board.claim(), board.claim()
    assert board.claim() is None  # all in use (held by this process, the "master")
    board.release(second)
    assert board.others_accepting(first) == 0 and board.claim() == second


@pytest.mark.parametrize("held,lightest,defer,shed", [
    (4, 4, False, False),  # even: nothing moves
    (5, 4, True, False),   # one more: the lighter takes new connections, none is moved (it would come back)
    (6, 4, True, True),    # two more: one moves
    (8, 0, True, True),    # all of them, after a recycle
    (3, 5, False, False),  # lighter than the others: takes and keeps
])
def test_who_takes_new_connections_and_when_one_moves(held, lightest, defer, shed):
    assert worker_balance.should_defer_accept(held, lightest) is defer
    assert worker_balance.should_shed(held, lightest) is shed


def test_a_recycle_waits_for_the_others_but_not_forever():
    assert worker_balance.should_postpone_recycle(others_accepting=0, workers=2, postponed=0)
    assert not worker_balance.should_postpone_recycle(others_accepting=1, workers=2, postponed=0)
    assert not worker_balance.should_postpone_recycle(others_accepting=0, workers=1, postponed=0)
    assert not worker_balance.should_postpone_recycle(0, 2, postponed=worker_balance.MAX_POSTPONES)


# -- the real server -------------------------------------------------------------

def _held(server):
    """Client connections each worker holds (its sockets less the listener), by pid."""
    held = {}
    for pid in server.workers():
        sockets = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                sockets += os.readlink(fd).startswith("socket:")
            except OSError:
                pass
        held[pid] = sockets - 1
    return held


def _held_by_worker(server):
    return sorted(_held(server).values())


class KeepAliveClient:
    """One kept-alive connection that, like wrk or a browser, reconnects when told to close."""

    def __init__(self, port):
        self.port = port
        self.conn = self.connect()

    def connect(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        return conn

    def get(self):
        self.conn.request("GET", "/healthz")
        response = self.conn.getresponse()
        response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = self.connect()
        return response.status


def _until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def _even(server, clients, statuses):
    """Every client asks once more (keeping its connection alive, as a load
    generator does), then: do the workers hold within one connection of each
    other? Within one, not equal: a closed connection may still be counted
    until its worker reads the end of it."""
    statuses.extend(client.get() for client in clients)
    held = _held_by_worker(server)
    return len(held) == 2 and sum(held) >= len(clients) and held[-1] - held[0] <= 1


def _both_workers_up(server):
    """The server answers as soon as one worker does; these tests need both."""
    assert _until(lambda: len(server.workers()) == 2), server.workers()


@pytest.mark.slow
def test_eight_kept_alive_clients_are_split_evenly_between_two_workers(tmp_path):
    with gunicorn(tmp_path, WEB_CONCURRENCY="2") as server:
        _both_workers_up(server)
        clients, statuses = [KeepAliveClient(server.port) for _ in range(8)], []
        assert _until(lambda: _even(server, clients, statuses)), _held_by_worker(server)
        assert set(statuses) == {200}


@pytest.mark.slow
def test_connections_move_back_to_a_worker_that_missed_them(tmp_path):
    """One worker stopped while eight clients connected (as after a recycle, when the
    survivor takes them all): once it runs again, the busy one sends clients over
    with "Connection: close" until they are split evenly, and every request is answered."""
    with gunicorn(tmp_path, WEB_CONCURRENCY="2") as server:
        _both_workers_up(server)
        stopped = server.workers()[0]
        os.kill(stopped, signal.SIGSTOP)
        try:
            clients = [KeepAliveClient(server.port) for _ in range(8)]
            assert [client.get() for client in clients] == [200] * 8  # all by the running worker
            running = next(pid for pid in server.workers() if pid != stopped)
            assert _until(lambda: _held(server)[running] >= 8), (stopped, _held(server))
        finally:
            os.kill(stopped, signal.SIGCONT)
        statuses = []
        assert _until(lambda: _even(server, clients, statuses)), _held_by_worker(server)
        assert set(statuses) == {200}
