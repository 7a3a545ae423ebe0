"""Keep gunicorn's workers holding about as many connections as each other.

A kept-alive connection stays with the worker that accepted it, and the
kernel hands a new connection to whichever worker polls first, not to the
idle one. Measured under `make bench-serve` (2 workers, 8 keep-alive
clients): the connections split 6/2, or 8/0 after a recycle sent them all to
the surviving worker, and one worker queued six predictions while the other
sat idle: p99 34-38 ms where an even 4/4 split queues four.

So every worker writes how many connections it holds into a small table in
memory shared by the master and all its workers (created before the fork),
and reads the others': a worker holding more than the lightest one lets that
one accept a new connection first (`should_defer_accept`), and when it holds
two or more above it, answers with "Connection: close" (`should_shed`), so
that the client's next connection lands on the lighter worker. And a worker
due to be recycled waits while another is restarting (`should_postpone_recycle`),
so that some worker is always accepting. A lone worker,
or one whose module was imported after the fork, sees no one else and
behaves exactly as before.
"""
import mmap
import os
import struct
import time

# Slots for workers alive at once; past it a worker runs unbalanced (see claim).
SLOTS = 64
# How long a worker holding more connections waits for the lighter one to
# accept a new connection before it takes it itself (a stuck or stopped
# lighter worker must not leave it waiting). A worker's loop gets the GIL
# back within Python's 5 ms switch interval even while its thread predicts.
ACCEPT_DEFER_S = 0.005
# A worker sheds a kept-alive connection when it holds this many more than
# the lightest: with 1 an odd count would move back and forth forever.
SHED_MARGIN = 2
# A worker due to be recycled while fewer than all the others accept (one is
# stopping, or gone and not yet replaced) serves this many more requests first, at most
# MAX_POSTPONES times (then it goes anyway: the master may have been told to
# run fewer workers). Measured: with the load balanced, both workers reached
# MAX_REQUESTS within a second of each other, nobody accepted until a
# replacement booted, and /healthz p99 under 8 clients rose from 4-7 ms to
# 44-254 ms.
RECYCLE_POSTPONE = 100
MAX_POSTPONES = 20
# Published by a worker that does not accept (stopping, or at MAX_CONNECTIONS):
# the others must not wait for it or move connections to it.
NOT_ACCEPTING = 2 ** 62
# A worker's loop publishes at least once a second (gunicorn's select timeout);
# an entry older than this belongs to a frozen worker (stopped, or stuck with
# its loop starved) and is treated as not accepting, not as the lightest: else
# the others would shed every connection toward it until the master kills it.
STALE_AFTER_S = 3.0

_SLOT = struct.Struct("qqq")  # pid, connections held, when (CLOCK_MONOTONIC ms: one clock for all processes)


def _now_ms():
    return int(time.monotonic() * 1000)


class LoadBoard:
    """Connections held per worker, in an anonymous shared mapping."""

    def __init__(self, slots=SLOTS, stale_after_s=STALE_AFTER_S):
        self.slots = slots
        self.stale_after_ms = int(stale_after_s * 1000)
        self._table = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED: forked workers see one table

    def _read(self, slot):
        return _SLOT.unpack_from(self._table, slot * _SLOT.size)

    def _write(self, slot, pid, held):
        _SLOT.pack_into(self._table, slot * _SLOT.size, pid, held, _now_ms())

    def _accepting_others(self, slot):
        """(slot, connections) of every other live worker that accepts, fresh; a dead
        one's slot (killed without releasing: a timed-out worker) is freed on the way."""
        now = _now_ms()
        for other, (owner, held, stamp) in enumerate(_SLOT.iter_unpack(self._table)):
            if other == slot or owner == 0 or held >= NOT_ACCEPTING or now - stamp > self.stale_after_ms:
                continue
            if not _alive(owner):
                self._write(other, 0, 0)
                continue
            yield other, held

    def claim(self):
        """A free slot (or one a dead worker left), reserved until its worker publishes; None
        if all are in use. Called where gunicorn builds a worker: in the master, before the
        fork, one worker at a time, so two workers never take the same slot."""
        for slot in range(self.slots):
            owner = self._read(slot)[0]
            if owner == 0 or not _alive(owner):
                self._write(slot, os.getpid(), NOT_ACCEPTING)  # the master holds it meanwhile
                return slot
        return None

    def publish(self, slot, held):
        self._write(slot, os.getpid(), held)

    def release(self, slot):
        self._write(slot, 0, 0)

    def lightest_other(self, slot):
        """The fewest connections another accepting worker holds, or None if there is none."""
        return min((held for _, held in self._accepting_others(slot)), default=None)

    def others_accepting(self, slot):
        """How many other workers accept connections right now (not starting, stopping, full or frozen)."""
        return sum(1 for _ in self._accepting_others(slot))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def should_defer_accept(held, lightest_other):
    """Another worker holds fewer connections: it should take the next one."""
    return lightest_other is not None and lightest_other < held


def should_shed(held, lightest_other):
    """This worker holds enough more than the lightest that a connection should move."""
    return lightest_other is not None and held - lightest_other >= SHED_MARGIN


def should_postpone_recycle(others_accepting, workers, postponed):
    """Not every other worker is accepting, and this one has not waited its fill yet."""
    return others_accepting < workers - 1 and postponed < MAX_POSTPONES
