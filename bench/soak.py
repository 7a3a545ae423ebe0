"""Soak: many mixed good and bad requests against gunicorn, then the verdict.

    python -m bench.soak [--requests 50000] [--clients 8] [--workers 2]

A server that answers each bad request correctly once can still leak memory,
wedge a worker or crash after thousands of them. This sends a fixed, seeded
mix (drawings in every accepted form, blank canvases, garbage, wrong types,
bad base64, oversize declarations, wrong methods) and reports counts per
status and per request kind, requests whose status or body broke the
contract, and the workers' resident memory at start, after warm-up and at
the end (from /proc/<pid>/status). Exit status is non-zero on any 5xx or
unanswered request (client timeout 30 s, reset), since either means a
request a user would have lost.
"""
import argparse
import time

from . import payloads
from .loadclient import run_load
from .servers import Gunicorn, rss_kib

WARMUP_REQUESTS = 500


def rss_snapshot(server):
    return {pid: rss_kib(pid) for pid in server.worker_pids()}


def format_rss(snapshot):
    return ", ".join(f"pid {pid}: {kib / 1024:.1f} MiB" for pid, kib in snapshot.items() if kib) or "none"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests to send (default 50000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-requests", type=int, default=0,
                        help="gunicorn worker recycling; 0 (default) turns off the config's recycling "
                             "so RSS at the end belongs to the same workers as at the start")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.clients <= 256:
        parser.error("bounded soak: 1-1000000 requests, 1-256 clients")

    cases = payloads.soak_mix()
    with Gunicorn(workers=args.workers, extra_args=["--max-requests", str(args.max_requests)]) as server:
        start_rss = rss_snapshot(server)
        run_load("127.0.0.1", server.port, cases, args.clients, total=min(WARMUP_REQUESTS, args.requests),
                 seed=args.seed + 1)
        warm_rss = rss_snapshot(server)
        print(f"soak: {args.requests} requests, {args.clients} clients, {args.workers} workers, "
              f"{len(cases)} request kinds, seed {args.seed}, max_requests {args.max_requests}", flush=True)
        started = time.monotonic()
        result = run_load("127.0.0.1", server.port, cases, args.clients, total=args.requests, seed=args.seed)
        end_rss = rss_snapshot(server)
        print(f"done in {time.monotonic() - started:.1f}s: {result.rps:.1f} req/s, "
              f"p50 {result.percentile_ms(50):.1f} ms, p99 {result.percentile_ms(99):.1f} ms")
        server_log = server.output()

    print(f"\n{'request kind':<20} {'expected':>9}  statuses")
    for case in cases:
        counts = result.per_case.get(case.name, {})
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        print(f"{case.name:<20} {'/'.join(map(str, case.expected)):>9}  {shown}")
    print("\nper status: " + ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items())))

    print(f"\nworker RSS at start:       {format_rss(start_rss)}")
    print(f"worker RSS after warm-up:  {format_rss(warm_rss)}")
    print(f"worker RSS at end:         {format_rss(end_rss)}")
    if set(end_rss) != set(start_rss):
        print(f"note: workers changed during the soak ({sorted(start_rss)} -> {sorted(end_rss)}): "
              f"restarted by max_requests or after a crash; see the server log")
    else:
        growth = {pid: (end_rss[pid] - warm_rss[pid]) / 1024 for pid in end_rss if end_rss[pid] and warm_rss.get(pid)}
        print("RSS growth after warm-up: " + ", ".join(f"pid {pid}: {mib:+.1f} MiB" for pid, mib in growth.items()))

    crashes = sum(server_log.count(mark) for mark in ("WORKER TIMEOUT", "SIGKILL", "Traceback"))
    print(f"\n5xx: {result.server_errors}   no answer (timeout or connection error): "
          f"{sum(result.transport_errors.values())} "
          f"{dict(result.transport_errors) or ''}   status not as expected: {sum(result.unexpected.values())} "
          f"{dict(result.unexpected) or ''}   bodies not contract JSON: {sum(result.malformed.values())} "
          f"{dict(result.malformed) or ''}   worker crash/timeout lines in log: {crashes}")
    failed = result.server_errors or result.transport_errors
    print("FAIL: the server lost requests" if failed else "OK: zero 5xx, every request answered")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
