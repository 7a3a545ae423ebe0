"""What each lever buys on real pen writing: `python -m bench.ablate_pen` (`make ablate-pen`).

Short runs of the CNN, each from the same seed, that differ in one thing:
which pen-domain training images they add to MNIST (real pen digits, MNIST
re-traced with a round brush, letters/symbols/doodles as "not a digit"),
elastic distortion, a wider network. Each model is measured on MNIST test and
on the held-out institutions' pen digits and non-digits (pre-drawn once, in the
judged variants, through the app's preprocessing: `tools.pen_dataset --judged`).
Test-time augmentation and a two-model ensemble are measured on finished
models (`--models`), since they change inference, not training.
Short runs compare recipes; they are not the shipped model's numbers.
"""
import argparse
import time

import numpy as np

from model import rejection
from model import train as trainer
from model.augment import AugmentConfig, Augmenter
from model.datasets import load_extra, load_mnist, mnist_dir_from_env
from model.inference import Model, load_model
from model.network import CNN, Network
from model.optimizers import make_optimizer
from model.parallel import blas_single_threaded

WIDE = [dict(layer) for layer in CNN]
WIDE[0]["filters"], WIDE[3]["filters"], WIDE[7]["units"] = 48, 96, 192


def subset(images, labels, sources, keep):
    mask = np.array([any(s.startswith(k) for k in keep) for s in sources], dtype=bool)
    return images[mask], labels[mask]


def recipes(pen):
    images, labels, sources = pen
    yield "MNIST only", (), AugmentConfig(), CNN
    yield "+ pen digits", ("pen-digit",), AugmentConfig(), CNN
    yield "+ pen digits + re-traced MNIST", ("pen-digit", "mnist-restroke"), AugmentConfig(), CNN
    everything = ("pen-digit", "mnist-restroke", "pen-char", "shape")
    yield "+ letters, doodles: not-a-digit class", everything, AugmentConfig(), CNN
    styled = everything + ("pen-styled",)
    yield "+ crossed 0s, flagged 1s (shipped)", styled, AugmentConfig(), CNN
    yield "shipped recipe, no elastic distortion", styled, AugmentConfig.without("elastic"), CNN
    yield "shipped recipe, wider net (48/96/192)", styled, AugmentConfig(), WIDE


def train_one(architecture, cfg, x, y, epochs, seed):
    rng = np.random.default_rng(seed)
    classes = 11 if np.any(y == rejection.NOT_A_DIGIT) else 10
    architecture = trainer.with_classes(architecture, classes)
    net = Network(architecture, trainer.NORMALIZATION["shape"], seed=seed)
    opt = make_optimizer("adam", net.parameters(), 2e-3, 0.01)
    with blas_single_threaded():
        state, _, _ = trainer.train(net, opt, x, y, None, None, epochs=epochs, batch_size=128, base_lr=2e-3,
                                    rng=rng, augmenter=Augmenter(cfg), log=lambda *_: None)
    meta = {"architecture": architecture, "input": trainer.NORMALIZATION, "weights_sha256": "-"}
    if classes == 11:
        meta["not_digit"] = {"threshold": 0.5}
    return Model(meta, state)


def scores(model, images):
    """(digit probabilities (N, 10), not-a-digit share (N,)) in batches."""
    probs, other = [], []
    for s in range(0, len(images), 500):
        p = model.predict(images[s:s + 500])
        probs.append(p.probabilities)
        other.append(p.not_digit)
    return np.concatenate(probs), np.concatenate(other)


def measure(probs, not_digit, labels, calibration=None):
    """Digit accuracy on real digits, and (with a threshold calibrated to refuse
    0.4% of the calibration digits) the share of non-digits and digits refused."""
    digits = labels < rejection.NOT_A_DIGIT
    row = {"pen": float(np.mean(probs[digits].argmax(axis=1) == labels[digits]))}
    if calibration is not None and not_digit.any():
        threshold = calibration["threshold"]
        row["flagged_non_digits"] = float(np.mean(not_digit[~digits] >= threshold))
        row["flagged_digits"] = float(np.mean(not_digit[digits] >= threshold))
    return row


def tta(model, images, shifts=((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))):
    """Average of the answers to the digit shifted by one pixel each way."""
    probs, other = 0, 0
    for dy, dx in shifts:
        p, o = scores(model, np.roll(images, (dy, dx), axis=(1, 2)))
        probs, other = probs + p, other + o
    return probs / len(shifts), other / len(shifts)


def latency_ms(model, repeats=200):
    x = np.zeros((1, 28, 28), np.uint8)
    model.predict(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def row_text(name, mnist, row, ms, seconds):
    flagged = (f"{row['flagged_non_digits']:>8.1%} {row['flagged_digits']:>8.2%}"
               if "flagged_non_digits" in row else f"{'-':>8} {'-':>8}")
    return f"| {name:<36}| {mnist:>7.2%} | {row['pen']:>7.2%} | {flagged} | {ms:>5.2f} | {seconds:>5.0f} |"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.ablate_pen", description=__doc__.splitlines()[0])
    p.add_argument("--pen", default="runs/pen_train.npz", help="tools.pen_dataset output (training institutions)")
    p.add_argument("--styles", default="runs/pen_styles.npz", help="tools.pen_dataset --styled output")
    p.add_argument("--holdout", default="runs/pen_holdout.npz", help="held-out institutions, --judged renders")
    p.add_argument("--calibrate", default="runs/pen_calibrate.npz", help="calibration institutions, --judged")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--mnist", type=int, default=30000, help="MNIST training images per run")
    p.add_argument("--pen-share", type=float, default=0.5, help="share of the pen images per run")
    p.add_argument("--only", default="", help="comma list of recipe numbers to run (1-based)")
    p.add_argument("--models", default="", help="comma list of finished model files: measure TTA and an ensemble")
    p.add_argument("--data", default=None)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    data = load_mnist(data_dir=args.data or mnist_dir_from_env())
    test_x, test_y = data["test_images"], data["test_labels"]
    hold_x, hold_y, _ = load_extra(args.holdout)
    cal_x, cal_y, _ = load_extra(args.calibrate)
    parts = []
    for path in (args.pen, args.styles):
        with np.load(path, allow_pickle=False) as pen:
            parts.append((pen["images"], pen["labels"], pen["sources"]))
    pen_x, pen_y, pen_src = (np.concatenate(column) for column in zip(*parts))
    pick = np.random.default_rng(args.seed).random(len(pen_x)) < args.pen_share
    pen_x, pen_y, pen_src = pen_x[pick], pen_y[pick], pen_src[pick]

    print(f"held out: {int(np.sum(hold_y < 10))} digits, {int(np.sum(hold_y == 10))} non-digits; "
          f"runs: {args.epochs} epochs on {args.mnist} MNIST + up to {len(pen_x)} pen-domain images, seed {args.seed}")
    print(f"| {'recipe':<36}| {'MNIST':>7} | {'pen':>7} | {'non-dig':>8} {'dig flag':>8} | {'ms':>5} | {'s':>5} |")
    print(f"|{'-' * 37}|{'-' * 9}|{'-' * 9}|{'-' * 19}|{'-' * 7}|{'-' * 7}|")
    only = {int(i) for i in args.only.split(",") if i}
    for number, (name, keep, cfg, architecture) in enumerate(recipes((pen_x, pen_y, pen_src)), 1):
        if only and number not in only:
            continue
        start = time.perf_counter()
        extra_x, extra_y = subset(pen_x, pen_y, pen_src, keep) if keep else (pen_x[:0], pen_y[:0])
        x = np.concatenate([data["train_images"][:args.mnist], extra_x])
        y = np.concatenate([data["train_labels"][:args.mnist], extra_y])
        model = train_one(architecture, cfg, x, y, args.epochs, args.seed)
        mnist_acc = float(np.mean(scores(model, test_x)[0].argmax(axis=1) == test_y))
        calibration = None
        if model.rejects:
            calibration = rejection.calibrate(scores(model, cal_x)[1], cal_y)
        row = measure(*scores(model, hold_x), hold_y, calibration)
        print(row_text(f"{number}. {name}", mnist_acc, row, latency_ms(model), time.perf_counter() - start),
              flush=True)

    models = [load_model(path) for path in args.models.split(",") if path]
    for model in models:
        calibration = rejection.calibrate(scores(model, cal_x)[1], cal_y) if model.rejects else None
        for label, fn in (("", scores), (" + TTA (5 shifts)", tta)):
            mnist_acc = float(np.mean(fn(model, test_x)[0].argmax(axis=1) == test_y))
            row = measure(*fn(model, hold_x), hold_y, calibration)
            ms = latency_ms(model) * (5 if label else 1)
            print(row_text(f"{model.path.rsplit('/', 1)[-1]}{label}"[:36], mnist_acc, row, ms, 0), flush=True)
    if len(models) >= 2:
        def ensemble(images):
            parts = [scores(m, images) for m in models]
            return sum(p for p, _ in parts) / len(parts), sum(o for _, o in parts) / len(parts)
        calibration = rejection.calibrate(ensemble(cal_x)[1], cal_y) if all(m.rejects for m in models) else None
        mnist_acc = float(np.mean(ensemble(test_x)[0].argmax(axis=1) == test_y))
        row = measure(*ensemble(hold_x), hold_y, calibration)
        print(row_text(f"ensemble of {len(models)}", mnist_acc, row, sum(latency_ms(m) for m in models), 0))


if __name__ == "__main__":
    main()
