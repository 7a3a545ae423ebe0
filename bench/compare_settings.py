"""One server setting, several values, served side by side: /predict req/s, p50, p99 and CPU.

    python -m bench.compare_settings --env MAX_REQUESTS --values 10000,50000 [--rounds 12]

`make bench-serve` runs one configuration; comparing two of its runs says more
about the shared machine's speed, which drifts by a third within a minute,
than about the setting. Here one server per value runs at once (the repo's
gunicorn.conf.py, with the environment variable it documents set to the
value, so derived settings such as the recycling jitter follow), and each round drives
every server in turn, in a rotated order: a few seconds of /healthz at 8
clients (the traffic bench-serve sends between /predict runs, which counts
toward max_requests too), then `--duration` seconds of /predict of the
transparent canvas PNG. The table gives medians over rounds of req/s, latency
and the server's CPU per /predict (master and workers, from /proc: what the
machine's load distorts least), and how many times each server recycled a
worker (from its log).
"""
import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from . import payloads
from .bench_serve import WRK, lua_script, with_server_cpu, wrk_run
from .servers import Gunicorn

HEALTHZ_SECONDS = 3
CLIENTS = 8


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MAX_REQUESTS", help="a setting gunicorn.conf.py reads from the "
                        "environment (MAX_REQUESTS, THREADS, KEEPALIVE...)")
    parser.add_argument("--values", default="10000,50000", help="comma-separated values, one server each")
    parser.add_argument("--rounds", type=int, default=12, help="rounds, median reported (default 12)")
    parser.add_argument("--duration", type=int, default=5, help="seconds of /predict per server and round")
    args = parser.parse_args(argv)
    values = args.values.split(",")
    if not WRK:
        parser.error("wrk not found (apt-get install wrk)")
    if not 1 <= args.rounds <= 50 or not 1 <= args.duration <= 60 or not 1 <= len(values) <= 4:
        parser.error("bounded benchmark: 1-50 rounds, 1-60 s, 1-4 values")
    if len(set(values)) != len(values):
        parser.error("the values must differ: one server each (to compare identical servers, "
                     "give an unused variable distinct values)")

    scratch = tempfile.TemporaryDirectory(prefix="bench-settings-")
    body = Path(scratch.name) / "canvas.png"
    body.write_bytes(payloads.canvas_png(style="transparent"))
    predict, healthz = lua_script(scratch.name, "predict", body), lua_script(scratch.name, "healthz")
    runs = {value: [] for value in values}
    with contextlib.ExitStack() as stack:
        servers = {value: stack.enter_context(Gunicorn(workers=2, extra_env={args.env: value}))
                   for value in values}
        order = list(values)
        for done in range(args.rounds):
            order = order[1:] + order[:1]
            for value in order:
                wrk_run(servers[value].port, healthz, CLIENTS, HEALTHZ_SECONDS)
                runs[value].append(with_server_cpu(servers[value], wrk_run, servers[value].port, predict,
                                                   CLIENTS, args.duration))
            print(f"  round {done + 1}/{args.rounds}", flush=True)
        recycles = {value: server.output().count("Autorestarting worker") for value, server in servers.items()}

    print(f"\n{args.env}: /predict at {CLIENTS} clients, medians of {args.rounds} rounds")
    print(f"{'value':>12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} {'recycles':>9}")
    for value in values:
        rows = runs[value]
        print(f"{value:>12} {statistics.median(r['rps'] for r in rows):>8.1f} "
              f"{statistics.median(r['p50_ms'] for r in rows):>8.2f} "
              f"{statistics.median(r['p99_ms'] for r in rows):>8.2f} "
              f"{statistics.median(r['cpu_ms'] for r in rows):>11.3f} {recycles[value]:>9}")
    failed = sum(r["non_2xx"] + r["socket_errors"] for rows in runs.values() for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
