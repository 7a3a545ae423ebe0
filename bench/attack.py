"""Slow and idle clients: normal latency with and without an attack, side by side.

    python -m bench.attack [--duration 20] [--slow 64] [--idle 64] [--clients 8]

Starts gunicorn on 127.0.0.1 with the repo's gunicorn.conf.py (as `make run`
does, only the bind forced to loopback), then runs the same normal load twice:
once alone, once while attackers hold the server's connections:

- slow-body clients send a `POST /predict` header announcing a body, then one
  byte per second (a phone on a bad link, or slowloris); whenever the server
  cuts one off, it reconnects at once, so the pressure never lets up;
- idle clients open a connection and then sit on it: half send nothing at all,
  half send one `GET /healthz` and keep the connection alive without a second
  request. They too reconnect when the server closes them.

The normal load is `--clients` closed-loop clients posting a 280x280 canvas
PNG to /predict on keep-alive connections, plus a prober that asks /healthz
twice a second on a new connection, as Docker's HEALTHCHECK does (it counts as
healthy when the answer comes within the HEALTHCHECK's 5 s timeout).

Every normal request waits up to --request-timeout (30 s) for its answer; one
that gets none counts as unanswered. "CPU ms/req" is the server's CPU time
(master and workers, from /proc) per answered normal request in each phase:
on a shared machine latencies follow the neighbours' load, this does not, and
its growth under attack is what the attackers cost the server. Loopback only; bounded in time
(at most 2 x 60 s of load) and in connections (at most 512 attackers).
"""
import argparse
import asyncio
import http.client
import os
import statistics
import threading
import time
from collections import Counter

import numpy as np

from . import payloads
from .loadclient import run_load
from .servers import Gunicorn

HEALTHCHECK_TIMEOUT_S = 5.0   # the Dockerfile's HEALTHCHECK --timeout
PROBE_INTERVAL_S = 0.5


class Attack:
    """Slow-body and idle connections held against 127.0.0.1:port from one
    asyncio loop in a background thread; `with Attack(...) as attack:`."""

    def __init__(self, port, slow, idle, body_bytes=20_000):
        self.port, self.slow, self.idle, self.body_bytes = port, slow, idle, body_bytes
        self.events = Counter()           # what happened to the attackers' connections
        self.held_s = {"slow": [], "idle": []}  # how long the server kept each one before cutting it
        self.open_now = Counter()
        self.loop = asyncio.new_event_loop()
        self.stopping = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        ready = threading.Event()
        self._ready = ready
        self.thread.start()
        ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)
        if self.thread.is_alive():
            # A starved machine: attackers may still reconnect (and be refused)
            # after the server stops; the report only counts the measured phase.
            print("note: the attackers took over 30 s to stop", flush=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self):
        self.stopping = asyncio.Event()
        tasks = [asyncio.ensure_future(self._slow_body(i)) for i in range(self.slow)]
        tasks += [asyncio.ensure_future(self._idle(i, send_request=i % 2 == 1)) for i in range(self.idle)]
        # Let every attacker connect before the normal load starts.
        await asyncio.sleep(1.0)
        self._ready.set()
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self, kind):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), timeout=10)
        except (OSError, asyncio.TimeoutError) as exc:
            self.events[f"{kind}: connect failed ({type(exc).__name__})"] += 1
            await asyncio.sleep(0.5)
            return None
        self.events[f"{kind}: connections opened"] += 1
        return reader, writer

    async def _held_until_closed(self, kind, reader, writer, opened, trickle):
        """Wait until the server closes the connection (trickling a byte a second
        if asked); record how long it was held and what the server said."""
        answer = b""
        sent = 0
        self.open_now[kind] += 1
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), timeout=1.0)
                except asyncio.TimeoutError:
                    if trickle and sent < self.body_bytes - 1:  # never complete the body
                        writer.write(b"x")
                        sent += 1
                        await writer.drain()
                    continue
                if not chunk:
                    break
                answer += chunk
        except (ConnectionError, OSError):
            self.events[f"{kind}: reset by server"] += 1
        finally:
            self.open_now[kind] -= 1
            writer.close()
        self.held_s[kind].append(time.monotonic() - opened)
        status = answer.split(b" ", 2)[1].decode(errors="replace") if answer.startswith(b"HTTP/") else None
        self.events[f"{kind}: closed by server" + (f" after {status}" if status else "")] += 1

    async def _slow_body(self, index):
        head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                f"Content-Length: {self.body_bytes}\r\n\r\n").encode()
        while True:
            connected = await self._connect("slow")
            if connected is None:
                continue
            reader, writer = connected
            opened = time.monotonic()
            try:
                writer.write(head)
                await writer.drain()
            except (ConnectionError, OSError):
                writer.close()
                continue
            await self._held_until_closed("slow", reader, writer, opened, trickle=True)

    async def _idle(self, index, send_request):
        while True:
            connected = await self._connect("idle")
            if connected is None:
                continue
            reader, writer = connected
            opened = time.monotonic()
            if send_request:
                try:
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    await writer.drain()
                except (ConnectionError, OSError):
                    writer.close()
                    continue
            await self._held_until_closed("idle", reader, writer, opened, trickle=False)


def probe_healthz(port, stop, timeout_s, results):
    """Ask /healthz on a fresh connection every PROBE_INTERVAL_S, like the HEALTHCHECK."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            conn.close()
            results.append((response.status, time.perf_counter() - started))
        except (OSError, http.client.HTTPException) as exc:
            results.append((type(exc).__name__, time.perf_counter() - started))
        stop.wait(max(0.0, PROBE_INTERVAL_S - (time.perf_counter() - started)))


def run_phase(server, png, clients, duration_s, timeout_s):
    """Normal load for duration_s: closed-loop /predict clients plus the healthz prober;
    also the server's CPU seconds spent meanwhile."""
    port = server.port
    cpu_before = server.cpu_seconds()
    stop = threading.Event()
    probes = []
    prober = threading.Thread(target=probe_healthz, args=(port, stop, timeout_s, probes), daemon=True)
    prober.start()
    load = run_load("127.0.0.1", port, [payloads.predict_png_case(png)], clients,
                    duration_s=duration_s, timeout_s=timeout_s)
    stop.set()
    prober.join(timeout_s + 5)
    return load, probes, server.cpu_seconds() - cpu_before


def row(phase, route, latencies_s, sent, answered_2xx):
    lat_ms = np.asarray(latencies_s, dtype=float) * 1000
    pct = (lambda q: float(np.percentile(lat_ms, q))) if len(lat_ms) else (lambda q: float("nan"))
    return {"phase": phase, "route": route, "sent": sent, "ok": answered_2xx, "unanswered": sent - answered_2xx,
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan")}


def summarize(phase, load, probes, cpu_s):
    predict_ok = load.statuses.get(200, 0)
    predict_sent = load.requests + sum(load.transport_errors.values())
    probe_ok = [lat for status, lat in probes if status == 200]
    healthy = sum(1 for lat in probe_ok if lat <= HEALTHCHECK_TIMEOUT_S)
    predict = row(phase, "predict", load.latencies_s, predict_sent, predict_ok)
    predict["rps"] = load.rps
    # Server CPU per answered request: unlike latency, barely moved by the neighbours' load.
    predict["cpu_ms"] = cpu_s * 1000 / max(1, predict_ok + len(probe_ok))
    healthz = row(phase, "healthz", probe_ok, len(probes), len(probe_ok))
    healthz["rps"] = healthz["cpu_ms"] = float("nan")
    healthz["healthy"] = f"{healthy}/{len(probes)}"
    return [predict, healthz]


def print_table(rows):
    print(f"\n{'phase':<7} {'route':<8} {'sent':>6} {'200 OK':>7} {'failed':>7} {'req/s':>7} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms/req':>10}  healthcheck<5s")
    for r in rows:
        rps = "" if r["rps"] != r["rps"] else f"{r['rps']:.1f}"
        cpu = "" if r["cpu_ms"] != r["cpu_ms"] else f"{r['cpu_ms']:.1f}"
        print(f"{r['phase']:<7} {r['route']:<8} {r['sent']:>6} {r['ok']:>7} {r['unanswered']:>7} {rps:>7} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {cpu:>10}  {r.get('healthy', '')}")
    by_route = {(r["phase"], r["route"]): r for r in rows}
    print(f"\n{'route':<8} {'p50 attack/normal':>18} {'p99 attack/normal':>18}")
    for route in ("predict", "healthz"):
        normal, attack = by_route[("normal", route)], by_route[("attack", route)]
        print(f"{route:<8} {attack['p50_ms'] / normal['p50_ms']:>18.2f} {attack['p99_ms'] / normal['p99_ms']:>18.2f}")


def thread_count(pids):
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per phase (default 20)")
    parser.add_argument("--slow", type=int, default=64, help="slow-body attackers (default 64)")
    parser.add_argument("--idle", type=int, default=64, help="idle attackers (default 64)")
    parser.add_argument("--clients", type=int, default=8, help="normal /predict clients (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, as the image)")
    parser.add_argument("--request-timeout", type=float, default=30.0,
                        help="how long a normal request waits for its answer (default 30 s)")
    parser.add_argument("--gunicorn-arg", action="append", default=[], metavar="ARG",
                        help="extra gunicorn argument to try another setting, e.g. "
                             "--gunicorn-arg=--worker-class=sync (repeatable)")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= 60 and 0 <= args.slow <= 256 and 0 <= args.idle <= 256
            and 1 <= args.clients <= 64):
        parser.error("bounded benchmark: duration 1-60 s, at most 256 slow and 256 idle attackers, "
                     "1-64 clients")

    png = payloads.canvas_png()
    load_before = os.getloadavg()[0]
    rows, attack_report = [], None
    with Gunicorn(workers=args.workers, extra_args=args.gunicorn_arg) as server:
        settings = server_settings(server)
        print(f"server: {settings}  extra args: {' '.join(args.gunicorn_arg) or '-'}")
        print(f"load: {args.clients} /predict clients + healthz probe every {PROBE_INTERVAL_S}s; "
              f"attack: {args.slow} slow-body (1 byte/s) + {args.idle} idle connections; "
              f"{args.duration}s per phase; cpus={os.cpu_count()} loadavg={load_before:.2f}", flush=True)
        rows += summarize("normal", *run_phase(server, png, args.clients, args.duration, args.request_timeout))
        with Attack(server.port, args.slow, args.idle) as attack:
            open_at_start = dict(attack.open_now)
            attacked = run_phase(server, png, args.clients, args.duration, args.request_timeout)
            threads = thread_count([server.proc.pid, *server.worker_pids()])
            open_at_end = dict(attack.open_now)
            # What happened during the measured phase, not while shutting down.
            events = Counter(attack.events)
            held_s = {kind: list(held) for kind, held in attack.held_s.items()}
        rows += summarize("attack", *attacked)
        attack_report = (events, held_s, open_at_start, open_at_end, threads)
        alive = server.proc.poll() is None

    print_table(rows)
    events, held_s, open_at_start, open_at_end, threads = attack_report
    print(f"\nattackers' connections open after 1 s: {open_at_start}; at the end: {open_at_end}; "
          f"server threads at the end: {threads}")
    for kind, held in held_s.items():
        if held:
            print(f"  {kind}: server cut {len(held)} connections, median held {statistics.median(held):.1f}s, "
                  f"max {max(held):.1f}s")
    for event, count in sorted(events.items()):
        print(f"  {event}: {count}")
    print(f"loadavg before {load_before:.2f}, after {os.getloadavg()[0]:.2f}; server still running: {alive}")
    failed = sum(r["unanswered"] for r in rows)
    return 1 if failed or not alive else 0


def server_settings(server):
    """The effective worker settings, as gunicorn printed them at boot."""
    text = server.output()
    for line in text.splitlines():
        if "Using worker:" in line:
            return line.split("Using worker:", 1)[1].strip()
    return "?"


if __name__ == "__main__":
    raise SystemExit(main())
