"""The classic from-scratch networks, retrained on this engine and compared:
`python -m tools.zoo` (`make zoo`).

Each row is one `python -m model.train` command (printed with --commands), run
on all 60,000 MNIST training images with the optimiser, learning rate, batch
size and cost the tutorial used, and written to model/weights/zoo/NAME.npz.
Then every model, the shipped CNN included, is judged the same way: MNIST test
accuracy, accuracy on real pen-written digits of the held-out writers
(`tools.pendata.HOLDOUT`) drawn as canvas PNGs and run through the API's
preprocessing (`tools.pen_eval`, the default variant), and the latency of one
image, the way the web app calls it.

    python -m tools.zoo                 # train every row, then print the table
    python -m tools.zoo --eval-only     # judge the shipped .npz files again
    python -m tools.zoo --only linear,sigmoid-15
"""
import argparse
import contextlib
import io
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from model import archspec
from model.datasets import mnist_dir_from_env
from model.inference import DEFAULT_MODEL_PATH, load_model

ZOO_DIR = os.path.join(os.path.dirname(DEFAULT_MODEL_PATH), "zoo")


@dataclass(frozen=True)
class Recipe:
    """One classic network and how its tutorial trained it."""
    name: str
    arch: str
    flags: str       # the model.train flags that make it this tutorial's run
    source: str      # where the network comes from
    reported: str    # what that source reports, in its own words and setting

    def argv(self, data_dir, out):
        return (["--arch", self.arch, *self.flags.split(), "--val-split", "0", "--no-augment",
                 "--weight-decay", "0", "--average-epochs", "0", "--seed", "1", "--name", self.name,
                 "--data", data_dir, "--out", out])


CLASSIC_SGD = "--optimizer sgd --momentum 0 --schedule constant"
ADAM = "--optimizer adam --schedule warmup-cosine"

RECIPES = (
    Recipe("linear-1k", "linear", f"{CLASSIC_SGD} --lr 0.01 --batch-size 1 --epochs 1 --limit 1000",
           "softmax regression in pure Python, stopped after 1,000 images",
           "~75% (a full epoch did not finish in a day)"),
    Recipe("linear", "linear", f"{CLASSIC_SGD} --lr 0.1 --batch-size 100 --epochs 5",
           "softmax regression, 784 -> 10 (TensorFlow's first MNIST tutorial)", "~92%"),
    Recipe("sigmoid-15", "sigmoid-15", f"{CLASSIC_SGD} --lr 0.5 --batch-size 10 --epochs 10",
           "784-15-10, sigmoid hidden layer, SGD", "-"),
    Recipe("sigmoid-30-quadratic", "sigmoid-30",
           f"{CLASSIC_SGD} --lr 3.0 --batch-size 10 --epochs 10 --loss quadratic",
           "Nielsen ch. 1: 784-30-10 sigmoid, quadratic cost, SGD lr 3.0, mini-batch 10",
           "95.42% (best of 30 epochs)"),
    Recipe("sigmoid-30", "sigmoid-30", f"{CLASSIC_SGD} --lr 0.5 --batch-size 10 --epochs 10",
           "Nielsen ch. 3: 784-30-10 sigmoid, cross-entropy, SGD lr 0.5, mini-batch 10",
           "95.49% (30 epochs)"),
    Recipe("mlp-128-64-sigmoid", "mlp-128-64-sigmoid", f"{CLASSIC_SGD} --lr 0.05 --batch-size 1 --epochs 1",
           "784-128-64-10 sigmoid in NumPy, trained one image at a time", "not stated as one figure"),
    Recipe("mlp-128-64", "mlp-128-64", f"{ADAM} --lr 0.001 --batch-size 64 --epochs 10",
           "the same 784-128-64-10 with ReLU and Adam: the better row", "-"),
)
SHIPPED = "cnn"  # judged beside the zoo, never retrained here (make train does that)


def zoo_path(name):
    return os.path.join(ZOO_DIR, f"{name}.npz")


def train_recipe(recipe, data_dir, out_dir, log):
    """Run the recipe's model.train command; returns the meta it wrote."""
    from model import train as trainer  # only needed when training
    out = os.path.join(out_dir, f"{recipe.name}.npz")
    argv = recipe.argv(data_dir, out)
    log(f"training {recipe.name}: python -m model.train {' '.join(argv)}")
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        meta = trainer.main(argv)
    for line in captured.getvalue().splitlines():
        if line.startswith("epoch") or line.startswith("test accuracy"):
            log("  " + line)
    return meta


def batch1_latency_ms(model, image, repeats=300):
    """Median wall time of one single-image predict, as a request makes it: with one
    BLAS thread, as each gunicorn worker runs (gunicorn.conf.py)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        model.predict(image[None])  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(image[None])
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def accuracy(model, images, labels, batch=1000):
    predicted = np.concatenate([model.predict_proba(images[i:i + batch]).argmax(axis=1)
                                for i in range(0, len(images), batch)])
    return float(np.mean(predicted == labels))


def pen_samples(pen_dir, n=None, seed=0):
    """The held-out institutions' pen digits (`tools.pendata.HOLDOUT`): all of them,
    in the data set's order, which is exactly what `make eval-pen` draws; or about
    n of them, the same number per digit (a quicker, smaller sample)."""
    from tools import pendata
    samples = pendata.by_institution(pendata.load("digits", pen_dir), pendata.HOLDOUT)
    if n is None:
        return samples
    return pendata.stratified(samples, max(1, n // 10), key=lambda s: s["label"], seed=seed)


def pen_digits(pen_dir, n=None, seed=0, jobs=1):
    """(uint8 (N, 28, 28) inputs as /predict sees them, labels (N,)): the held-out pen
    digits of `pen_samples`, drawn on the canvas in the default variant, encoded as
    PNG and preprocessed as the API does (`tools.pen_eval.draw_all`, same seeds), so
    with n=None a model's pen accuracy is its default-variant row of `make eval-pen`."""
    from tools import pen_eval
    sample = pen_samples(pen_dir, n, seed)
    _, digits = pen_eval.draw_all([s["strokes"] for s in sample], "default", seed, jobs)
    return digits, np.array([s["label"] for s in sample], dtype=np.int64)


def pen_accuracy(model, pen):
    """Share of pen digits whose most likely digit is right, read as `tools.pen_eval` reads them."""
    from tools import pen_eval
    digits, labels = pen
    answers, _ = pen_eval.classify(model, digits)
    return float(np.mean(answers == labels))


def judge(model, mnist_test, pen):
    """The table row's measurements for one loaded model."""
    history = model.meta.get("history") or []
    seconds = [h["seconds"] for h in history if h.get("seconds") is not None]
    return {
        "arch": archspec.summary(model.architecture, model.input_shape),
        "params": archspec.parameter_count(model.architecture, model.input_shape),
        "epochs": len(history),
        "seconds_per_epoch": float(np.median(seconds)) if seconds else None,
        "mnist": accuracy(model, *mnist_test),
        "pen": pen_accuracy(model, pen) if pen is not None else None,
        "latency_ms": batch1_latency_ms(model, mnist_test[0][0]),
        "kbytes": os.path.getsize(model.path) / 1024,
    }


def format_table(rows):
    """One Markdown table: measured here, beside what the source reports."""
    head = ("| model | architecture | parameters | file | epochs | s/epoch | MNIST test | pen held-out | "
            "batch-1 latency | reported by the source |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, row, reported in rows:
        spe = f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] is not None else "-"
        pen = f"{row['pen']:.2%}" if row["pen"] is not None else "-"
        lines.append(f"| {name} | {row['arch']} | {row['params']:,} | {row['kbytes']:.0f} KB | {row['epochs']} | "
                     f"{spe} | {row['mnist']:.2%} | {pen} | {row['latency_ms']:.3f} ms | {reported} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma list of zoo names (default: all)")
    parser.add_argument("--eval-only", action="store_true", help="judge the existing files, train nothing")
    parser.add_argument("--out-dir", default=ZOO_DIR, help=f"where the .npz files go (default {ZOO_DIR})")
    parser.add_argument("--data", default=None, help="MNIST directory (default: MNIST_DIR or ../shared/mnist)")
    parser.add_argument("--pen", default=None,
                        help="pen data directory (default: PENDIGITS_DIR or ../shared/pendigits)")
    parser.add_argument("--pen-n", type=int, default=None,
                        help="judge about N held-out pen digits, stratified by label "
                             "(default: all of them, as make eval-pen; 0: skip)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes drawing the pen digits (the result does not depend on it)")
    parser.add_argument("--commands", action="store_true", help="print each row's model.train command and exit")
    args = parser.parse_args(argv)

    data_dir = args.data or mnist_dir_from_env()
    wanted = [n for n in args.only.split(",") if n]
    known = {r.name for r in RECIPES} | {SHIPPED}
    unknown = sorted(set(wanted) - known)
    if unknown:
        parser.error(f"unknown zoo name(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    recipes = [r for r in RECIPES if not wanted or r.name in wanted]
    if args.commands:
        for r in recipes:
            print(f"python -m model.train {' '.join(r.argv(data_dir or 'MNIST_DIR', zoo_path(r.name)))}")
        return 0
    if data_dir is None:
        parser.error("MNIST not found: pass --data DIR or set MNIST_DIR")

    def log(text):
        print(text, file=sys.stderr, flush=True)

    if not args.eval_only:
        os.makedirs(args.out_dir, exist_ok=True)
        for recipe in recipes:
            train_recipe(recipe, data_dir, args.out_dir, log)

    from model.datasets import load_mnist
    from tools import pendata
    test = load_mnist(data_dir=data_dir, splits=("test",))
    mnist_test = (test["test_images"], test["test_labels"].astype(np.int64))
    pen = None
    pen_dir = args.pen or pendata.pen_dir_from_env()
    want_pen = args.pen_n is None or args.pen_n > 0
    if want_pen and pen_dir:
        how_many = "all" if args.pen_n is None else f"about {args.pen_n}"
        log(f"drawing {how_many} pen digits of {', '.join(pendata.HOLDOUT)} from {pen_dir} as canvas PNGs")
        pen = pen_digits(pen_dir, args.pen_n, jobs=args.jobs)
    elif want_pen:
        log("pen digits not found (../shared/pendigits or PENDIGITS_DIR): the pen column stays empty")

    rows = []
    for recipe in recipes:
        model = load_model(os.path.join(args.out_dir, f"{recipe.name}.npz"))
        rows.append((recipe.name, judge(model, mnist_test, pen), recipe.reported))
    if not wanted or SHIPPED in wanted:
        model = load_model()
        rows.append((f"{SHIPPED} (shipped)", judge(model, mnist_test, pen), "-"))
    pen_note = (f"{len(pen[1])} UNIPEN digits of the held-out writers ({', '.join(pendata.HOLDOUT)}), default variant"
                if pen is not None else "no pen data")
    print(f"MNIST test: 10,000 images; pen: {pen_note}, drawn 280x280 and preprocessed as the API does; "
          f"latency: median of one-image predict calls, one BLAS thread, on this machine ({os.cpu_count()} cores)")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
