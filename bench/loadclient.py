"""A small threaded HTTP load client: the fallback when wrk is absent, and the
soak's driver (wrk cannot check each answer's status and body per request kind).

Each thread keeps one keep-alive connection (reopened when the server closes
it) and records per request its latency, status and whether the body is the
JSON the contract promises. Loopback benchmarking only.
"""
import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    elapsed_s: float
    latencies_s: np.ndarray
    statuses: Counter                                     # status -> count
    per_case: dict = field(default_factory=dict)          # case name -> Counter of statuses
    unexpected: Counter = field(default_factory=Counter)  # (case, status) -> count
    malformed: Counter = field(default_factory=Counter)   # case name -> non-JSON or keyless bodies
    transport_errors: Counter = field(default_factory=Counter)  # (case name, exception name) -> count

    @property
    def requests(self):
        return int(sum(self.statuses.values()))

    @property
    def rps(self):
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q):
        return float(np.percentile(self.latencies_s, q) * 1000) if len(self.latencies_s) else float("nan")

    @property
    def server_errors(self):
        return sum(n for status, n in self.statuses.items() if status >= 500)


def body_is_contract_json(status, content_type, body):
    """Success carries "digit", an error carries "error"; healthz carries "status"."""
    if not content_type.startswith("application/json"):
        return False
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    return ("digit" in data or "status" in data) if status == 200 else "error" in data


def schedule(cases, length, seed):
    """A shuffled list of case indices honouring the weights: deterministic mixes."""
    order = [i for i, case in enumerate(cases) for _ in range(case.weight)]
    rng = random.Random(seed)
    return [rng.choice(order) for _ in range(length)]


def run_load(host, port, cases, concurrency, total=None, duration_s=None, seed=0, timeout_s=30):
    """Send `total` requests (or as many as fit in `duration_s`) from `concurrency` threads."""
    assert (total is None) != (duration_s is None), "give exactly one of total or duration_s"
    plan = schedule(cases, total if total is not None else 10_000, seed)
    lock = threading.Lock()
    cursor = [0]
    stop_at = [None]
    records = [[] for _ in range(concurrency)]  # (case index, status, latency, well_formed)
    failures = [Counter() for _ in range(concurrency)]

    def next_index():
        with lock:
            i = cursor[0]
            if total is not None and i >= total:
                return None
            if total is None and time.perf_counter() >= stop_at[0]:
                return None
            cursor[0] += 1
        return plan[i % len(plan)]

    def worker(slot):
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        while (index := next_index()) is not None:
            case = cases[index]
            started = time.perf_counter()
            try:
                conn.request(case.method, case.path, body=case.body or None, headers=case.headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                failures[slot][(case.name, type(exc).__name__)] += 1
                conn.close()
                continue
            latency = time.perf_counter() - started
            well_formed = body_is_contract_json(response.status, response.getheader("Content-Type", ""), body)
            records[slot].append((index, response.status, latency, well_formed))
            if response.getheader("Connection", "").lower() == "close" or \
                    case.headers.get("Connection", "").lower() == "close":
                conn.close()
        conn.close()

    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in range(concurrency)]
    started = time.perf_counter()
    if duration_s is not None:
        stop_at[0] = started + duration_s
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    result = LoadResult(elapsed, np.array([r[2] for rec in records for r in rec]), Counter())
    for rec in records:
        for index, status, _, well_formed in rec:
            case = cases[index]
            result.statuses[status] += 1
            result.per_case.setdefault(case.name, Counter())[status] += 1
            if status not in case.expected:
                result.unexpected[(case.name, status)] += 1
            if not well_formed:
                result.malformed[case.name] += 1
    for failure in failures:
        result.transport_errors.update(failure)
    return result
