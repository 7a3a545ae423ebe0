"""Does learning from corrections work? `python -m tools.corrections_demo`.

Real pen digits of one institution (../shared/pendigits, UNIPEN) play the users:
each is drawn on a 280x280 canvas as the page would send it, half of them are
shown to the real app over HTTP, and every one it reads wrong is corrected
through POST /feedback, as a person tapping "Wrong? It was: ..." would. The
stored corrections are exported and the model fine-tuned on MNIST plus them.
Printed: the institution's accuracy on its *other* digits (never corrected,
never trained on) and MNIST test accuracy, before and after.

    nice -n 19 python -m tools.corrections_demo [--inst gmd] [--epochs 2] [--mnist-subset 4000]
"""
import argparse
import gzip
import json
import os
import tempfile
import threading
import urllib.request

import numpy as np
from werkzeug.serving import WSGIRequestHandler, make_server

from model.datasets import REPO_ROOT, mnist_dir_from_env
from tools import strokes as canvas

PENDIGITS = os.path.join(REPO_ROOT, os.pardir, "shared", "pendigits", "pendigits_dev.json.gz")
BRUSH = 18          # px on the 280 px canvas: the pendigits README's typical pen
DRAWING_SIZE = 0.7  # of the canvas: the README's typical drawing


def load_institution(path, inst):
    with gzip.open(path, "rt") as fh:
        samples = [s for s in json.load(fh) if s["inst"] == inst]
    if not samples:
        raise SystemExit(f"{path}: no digits from institution {inst!r}")
    return samples


def render(sample, brush=BRUSH):
    """Pen strokes (box scaled to 1000, y down) -> the PNG a canvas would send."""
    scale = DRAWING_SIZE * canvas.CANVAS / 1000.0
    points = [np.asarray(stroke, np.float32).reshape(-1, 2) for stroke in sample["strokes"]]
    extent = np.concatenate(points).max(axis=0) * scale
    offset = (canvas.CANVAS - extent) / 2
    segments = []
    for stroke in points:
        placed = stroke * scale + offset
        if len(placed) == 1:
            placed = np.repeat(placed, 2, axis=0)  # a dot: a segment of length zero
        segments.append(np.stack([placed[:-1], placed[1:]], axis=1))
    return canvas.png_bytes(canvas.render_segments(np.concatenate(segments), brush))


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def post(url, png):
    request = urllib.request.Request(url, data=png, method="POST", headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def read_all(base_url, pngs):
    """What the served model answers for each drawing (None when refused)."""
    answers = []
    for png in pngs:
        status, body = post(base_url + "/predict", png)
        answers.append(body["digit"] if status == 200 else None)
    return np.array([-1 if a is None else a for a in answers])


def serve(model_path, data_dir):
    from app import create_app
    app = create_app({"MODEL_PATH": model_path, "DATA_DIR": data_dir, "FEEDBACK_MAX": 100_000,
                      "LOG_LEVEL": "WARNING"})  # not a line per request
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return app, server, thread, f"http://127.0.0.1:{server.server_port}"


def main(argv=None):
    from model import corrections, finetune
    from model.inference import DEFAULT_MODEL_PATH

    p = argparse.ArgumentParser(prog="python -m tools.corrections_demo", description=__doc__.splitlines()[0])
    p.add_argument("--inst", default="gmd", help="institution whose writers play the users")
    p.add_argument("--pendigits", default=PENDIGITS)
    p.add_argument("--base", default=DEFAULT_MODEL_PATH)
    p.add_argument("--data", default=mnist_dir_from_env(), help="MNIST directory")
    p.add_argument("--users-share", type=float, default=0.5, help="share of the digits shown to the app")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--mnist-subset", type=int, default=4000)
    p.add_argument("--weight", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workdir", help="keep the store, export and model here (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    samples = load_institution(args.pendigits, args.inst)
    order = rng.permutation(len(samples))
    cut = int(len(samples) * args.users_share)
    users, others = [samples[i] for i in order[:cut]], [samples[i] for i in order[cut:]]
    user_pngs, other_pngs = [render(s) for s in users], [render(s) for s in others]
    user_labels = np.array([s["label"] for s in users])
    other_labels = np.array([s["label"] for s in others])
    workdir = args.workdir or tempfile.mkdtemp(prefix="corrections-demo-")
    os.makedirs(workdir, exist_ok=True)

    app, server, thread, url = serve(args.base, os.path.join(workdir, "data"))
    try:
        answers = read_all(url, user_pngs)
        wrong = np.flatnonzero(answers != user_labels)
        for i in wrong:
            status, body = post(f"{url}/feedback?label={user_labels[i]}", user_pngs[i])
            if status != 201:
                raise SystemExit(f"POST /feedback answered {status}: {body}")
        before_others = read_all(url, other_pngs)
        store = app.extensions["corrections_store"]
        exported = os.path.join(workdir, "corrections.npz")
        meta = corrections.export(store, exported)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    print(f"{args.inst}: {len(users)} digits shown to the app, {len(wrong)} read wrong and corrected "
          f"through POST /feedback; {len(others)} other digits kept for judging")
    print(corrections.format_counts(meta["per_label"]))

    tuned = os.path.join(workdir, "finetuned.npz")
    result = finetune.main(["--base", args.base, "--corrections", exported, "--data", args.data,
                            "--out", tuned, "--epochs", str(args.epochs), "--mnist-subset",
                            str(args.mnist_subset), "--weight", str(args.weight), "--lr", str(args.lr),
                            "--holdout", "0", "--seed", str(args.seed)])

    app, server, thread, url = serve(tuned, os.path.join(workdir, "data-after"))
    try:
        after_others = read_all(url, other_pngs)
    finally:
        server.shutdown()
        thread.join(timeout=10)

    acc_before = float(np.mean(before_others == other_labels))
    acc_after = float(np.mean(after_others == other_labels))
    print()
    print(f"{'':34} {'before':>8} {'after':>8}")
    label = f"{args.inst} other digits ({len(others)})"
    print(f"{label:34} {acc_before * 100:7.2f}% {acc_after * 100:7.2f}%")
    print(f"{'MNIST test (10000)':34} {result['before']['MNIST test'] * 100:7.2f}% "
          f"{result['after']['MNIST test'] * 100:7.2f}%")
    per_digit = [(d, float(np.mean(before_others[other_labels == d] == d)),
                  float(np.mean(after_others[other_labels == d] == d))) for d in range(10)]
    print("per digit, " + args.inst + " other digits: " +
          "  ".join(f"{d}: {b * 100:.0f}->{a * 100:.0f}%" for d, b, a in per_digit))
    print(f"files in {workdir}")
    return {"before": acc_before, "after": acc_after, "mnist": (result["before"]["MNIST test"],
                                                               result["after"]["MNIST test"])}


if __name__ == "__main__":
    main()
