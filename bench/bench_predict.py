"""Where one /predict's CPU goes, in process, and the same for an older tree beside it.

    python -m bench.bench_predict [--baseline REV] [--rounds 15] [--requests 40] [--canvas both]

No server and no network: each tree runs in its own child process (the app
and bench/bare_app.py built as gunicorn builds them: Prometheus in
multiprocess mode, JSON request log to a file, one BLAS thread) and answers
requests through Flask's test client. The children take turns, round by
round, so a busy machine slows both alike; each number is the median over
rounds of the thread's CPU time per request (time.thread_time), which the
machine's load distorts far less than wall time.

Rows: the app's routes, the bare routes of the yardstick (bench/bare_app.py:
/predict with none of the app's middleware, /decode that only decodes the
PNG), the stages of one prediction timed on their own (decode, preprocess,
model, the answer's JSON), what is left for Flask and the middleware, and the
ratio issue 11 asks for: the decode-only route's CPU per request over the
app's /predict. `--baseline REV` adds a column for a git revision (unpacked
with `git archive`, nothing checked out) and the ratio new/old.

The payloads are the four canvas drawings of bench/payloads.py as 280x280
RGBA PNGs (raw body): black on a transparent canvas (what a canvas gives when
nothing fills it), black on the white the page's pad fills, or both; every
tree gets the same bytes (this file's payloads.py, not the tree's).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ROUTES = (("app", "/predict"), ("bare", "/predict"), ("bare", "/decode"), ("app", "/healthz"),
          ("bare", "/healthz"))
STAGES = ("decode", "preprocess", "model", "answer json")
ROWS = [f"{target} {route}" for target, route in ROUTES] + [f"  {stage}" for stage in STAGES] + [
    "  flask + middleware", "metric writes / predict"]


# --------------------------------------------------------------------------- child

def child_main(requests, canvas="both"):
    """Runs inside a tree's child process: one JSON line of timings per round asked for."""
    scratch = tempfile.mkdtemp(prefix="bench-predict-")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", scratch)  # as gunicorn.conf.py does
    os.environ.setdefault("DATA_DIR", scratch)
    log = open(os.path.join(scratch, "requests.log"), "w")
    sys.stderr = log  # the request log goes to a file, as gunicorn's does
    sys.path.insert(0, os.getcwd())

    import numpy as np
    import payloads  # this benchmark's own (its directory is on the path), so every tree gets the same bytes

    from app import create_app, imaging
    from app import preprocess as prep
    from bench.bare_app import create_bare_app

    app, bare = create_app(), create_bare_app()
    clients = {"app": app.test_client(), "bare": bare.test_client()}
    styles = ("transparent", "page") if canvas == "both" else (canvas,)
    bodies = [payloads.canvas_png(strokes, style=style) for style in styles
              for strokes in payloads.STROKES.values()]
    headers = {"Content-Type": "image/png"}
    model = app.extensions["digit_model"]
    max_pixels = app.config["MAX_IMAGE_PIXELS"]
    writes = count_metric_writes()

    def call(target, route, body):
        if route == "/healthz":
            response = clients[target].get(route)
        else:
            response = clients[target].post(route, data=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{target} {route}: {response.status_code} {response.data[:200]!r}")
        return response

    answers = [call("app", "/predict", body).get_json() for body in bodies]
    images = [imaging.decode_image(body, max_pixels) for body in bodies]
    digits = [prep.preprocess(image) for image in images]
    predictions = [model.predict(digit[None]) for digit in digits]

    def answer_json(i):
        from app import api
        probabilities = predictions[i].probabilities[0].astype(np.float64)
        answer = api.describe(probabilities, bool(predictions[i].is_digit[0]),
                              float(predictions[i].not_digit[0]), digits[i], model, 1.0, 1.0)
        return json.dumps(answer)

    stage_calls = {
        "decode": lambda i: imaging.decode_image(bodies[i], max_pixels).close(),
        "preprocess": lambda i: prep.preprocess(images[i]),
        "model": lambda i: model.predict(digits[i][None]),
        "answer json": answer_json,
    }

    def cpu_ms(work):
        start = time.thread_time()
        for n in range(requests):
            work(n % len(bodies))
        return (time.thread_time() - start) * 1000 / requests

    print(json.dumps({"ready": True, "digits": [a["digit"] for a in answers]}), flush=True)
    for line in sys.stdin:
        if line.strip() != "round":
            break
        row = {}
        for target, route in ROUTES:
            row[f"{target} {route}"] = cpu_ms(lambda i, t=target, r=route: call(t, r, bodies[i]))
        for stage, work in stage_calls.items():
            row[f"  {stage}"] = cpu_ms(work)
        before = writes[0]
        call("app", "/predict", bodies[0])
        row["metric writes / predict"] = writes[0] - before
        print(json.dumps(row), flush=True)


def count_metric_writes():
    """Count prometheus-client's writes to its multiprocess files (one per metric update)."""
    from prometheus_client import mmap_dict

    count = [0]
    original = mmap_dict.MmapedDict.write_value

    def counted(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    mmap_dict.MmapedDict.write_value = counted
    return count


# --------------------------------------------------------------------------- parent

def unpack(rev, into):
    """The tree of `rev` as files in `into` (git archive: no checkout, no worktree)."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def start_child(tree, requests, canvas):
    """A child measuring `tree` (its app, model and bare routes); this file's child_main
    runs there, so an older tree without this benchmark can be measured too."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tree), str(Path(__file__).resolve().parent)]))
    for name in ("PROMETHEUS_MULTIPROC_DIR", "DATA_DIR", "DATABASE_URL"):
        env.pop(name, None)  # the child makes its own
    code = "import sys; from bench_predict import child_main; child_main(int(sys.argv[1]), sys.argv[2])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(requests), canvas], cwd=tree, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline() or "{}")
    if not ready.get("ready"):
        raise RuntimeError(f"the child for {tree} did not start")
    return proc, ready["digits"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="git revision to measure beside this tree")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per tree, median reported (default 15)")
    parser.add_argument("--requests", type=int, default=40, help="requests per route per round (default 40)")
    parser.add_argument("--canvas", choices=("transparent", "page", "both"), default="both",
                        help="drawings on a transparent canvas, on the page's white, or both (default)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 200 or not 1 <= args.requests <= 2000:
        parser.error("bounded benchmark: 1-200 rounds, 1-2000 requests per round")

    with tempfile.TemporaryDirectory(prefix="bench-predict-tree-") as scratch:
        trees = {}
        if args.baseline:
            trees[f"{args.baseline}"] = unpack(args.baseline, scratch)
        trees["this tree"] = REPO
        children = {name: start_child(tree, args.requests, args.canvas) for name, tree in trees.items()}
        digits = {name: d for name, (_, d) in children.items()}
        if len({tuple(d) for d in digits.values()}) != 1:
            raise SystemExit(f"the trees answer differently: {digits}")
        print(f"loadavg={os.getloadavg()[0]:.2f} rounds={args.rounds} requests/round={args.requests} "
              f"payloads: 4 drawings on a {args.canvas.replace('both', 'transparent and a white')} canvas "
              f"(280x280 RGBA PNG), answered {digits['this tree']} by every tree")
        results = {name: [] for name in trees}
        try:
            for done in range(args.rounds):
                for name, (proc, _) in children.items():
                    proc.stdin.write("round\n")
                    proc.stdin.flush()
                    results[name].append(json.loads(proc.stdout.readline()))
                print(f"  round {done + 1}/{args.rounds}", end="\r", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        finally:
            for proc, _ in children.values():
                proc.stdin.close()
                proc.wait(timeout=60)
    print_table(results)


def print_table(results):
    names = list(results)
    medians = {name: {row: statistics.median(r[row] for r in rounds) for row in rounds[0]}
               for name, rounds in results.items()}
    for med in medians.values():
        med["  flask + middleware"] = med["app /predict"] - sum(med[f"  {s}"] for s in STAGES)
    print(f"\n{'CPU ms per request (median)':<28}" + "".join(f"{n:>14}" for n in names)
          + (f"{'new/old':>10}" if len(names) == 2 else ""))
    for row in ROWS:
        values = [medians[n][row] for n in names]
        fmt = "{:>14.0f}" if row.startswith("metric") else "{:>14.3f}"
        line = f"{row:<28}" + "".join(fmt.format(v) for v in values)
        if len(names) == 2 and values[0]:
            line += f"{values[1] / values[0]:>10.2f}"
        print(line)
    print(f"{'bare /decode / app /predict':<28}" + "".join(
        f"{medians[n]['bare /decode'] / medians[n]['app /predict']:>14.3f}" for n in names)
        + "   (issue 11: >= 0.40, goal 0.70; the CPU form of bench-serve's ratio)")
    print(f"{'app /predict - bare':<28}" + "".join(
        f"{medians[n]['app /predict'] - medians[n]['bare /predict']:>14.3f}" for n in names)
        + "   (what the app's middleware and answer add, ms)")


if __name__ == "__main__":
    raise SystemExit(main())
