"""Fine-tune an existing model on MNIST plus stored corrections
(python -m model.finetune --help).

Starting from a trained model, a short run at a small learning rate on a slice
of MNIST with the corrections mixed in (repeated `--weight` times, so a few
dozen drawings count; every repeat is augmented differently) teaches the model
the handwriting of the people who use it without forgetting MNIST. Before
anything is written, old and new are evaluated on the MNIST test set and on
corrections held out from training, side by side. Overwriting the shipped model
is refused when MNIST accuracy drops by more than 0.2 points, unless --force.

The architecture is the base model's, whatever it is. A model with an 11th
"not a digit" output keeps it: with `--extra` files holding label-10 examples
the class is rehearsed with them; without, the 11th output's weights are held
fixed (restored after every step), so it is not trained toward "never" by a
run that shows it no examples. Its calibrated threshold (meta "not_digit") is
kept, and the share of MNIST test digits it rejects is printed before and after.
"""
import argparse
import datetime as dt
import os
import sys
import time

import numpy as np

from . import corrections as corrections_file
from . import modelfile
from .augment import Augmenter
from .datasets import load_mnist
from .inference import DEFAULT_MODEL_PATH, Model
from .network import Network
from .optimizers import make_optimizer
from .parallel import blas_single_threaded
from .train import NORMALIZATION, train

# Refuse to replace the shipped model when MNIST test accuracy falls by more than this.
MAX_MNIST_DROP = 0.002
NOT_A_DIGIT = 10


class KeepOutputFixed:
    """An optimizer whose step leaves chosen output columns exactly as they were.

    The trainer sets `lr` and calls `step()`; both pass through. After each step
    the frozen slices are written back, which also undoes weight decay on them.
    """

    def __init__(self, optimizer, frozen):
        self.optimizer = optimizer
        self.frozen = [(array, index, array[index].copy()) for array, index in frozen]

    @property
    def lr(self):
        return self.optimizer.lr

    @lr.setter
    def lr(self, value):
        self.optimizer.lr = value

    def step(self):
        self.optimizer.step()
        for array, index, saved in self.frozen:
            array[index] = saved


def output_units(architecture):
    dense = [layer for layer in architecture if layer["type"] == "dense"]
    return int(dense[-1]["units"])


def holdout_split(labels, fraction, rng):
    """Indices (train, held out): `fraction` of each label held out, at least one
    when a label has two or more corrections."""
    train_idx, held_idx = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held = int(round(len(members) * fraction)) if len(members) > 1 else 0
        held = max(held, 1) if len(members) > 1 and fraction > 0 else held
        held_idx.extend(members[:held])
        train_idx.extend(members[held:])
    return np.sort(np.array(train_idx, np.int64)), np.sort(np.array(held_idx, np.int64))


def load_extra(paths):
    """Images and labels of --extra .npz files (arrays `images`, `labels`; labels 0-10)."""
    images, labels = [], []
    for path in paths:
        with np.load(path, allow_pickle=False) as archive:
            images.append(np.asarray(archive["images"], np.uint8).reshape(-1, 28, 28))
            labels.append(np.asarray(archive["labels"], np.int64))
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.concatenate(images), np.concatenate(labels)


def digit_accuracy(model, images, labels):
    """Share of images whose closest digit is the label (None when there are none)."""
    if len(images) == 0:
        return None
    predictions = np.concatenate([model.predict_proba(images[s:s + 1000]).argmax(axis=1)
                                  for s in range(0, len(images), 1000)])
    return float(np.mean(predictions == labels))


def rejected_share(model, images):
    """Share of images the model calls "not a digit" (0 for a 10-output model)."""
    if len(images) == 0 or not model.rejects:
        return 0.0
    return float(np.mean(np.concatenate([~model.predict(images[s:s + 1000]).is_digit
                                         for s in range(0, len(images), 1000)])))


def evaluate(model, sets):
    return {name: digit_accuracy(model, x, y) for name, (x, y) in sets.items()}


def percent(value):
    return "-" if value is None else f"{value * 100:6.2f}%"


def format_comparison(before, after, counts):
    lines = [f"{'':28} {'old':>8} {'new':>8} {'change':>8}"]
    for name in before:
        old, new = before[name], after[name]
        change = "-" if old is None or new is None else f"{(new - old) * 100:+7.2f}"
        lines.append(f"{name + f' ({counts[name]})':28} {percent(old):>8} {percent(new):>8} {change:>8}")
    return "\n".join(lines)


def replaces_a_served_model(out, base):
    """Writing to the shipped model or over the model we started from."""
    return os.path.abspath(out) in (os.path.abspath(DEFAULT_MODEL_PATH), os.path.abspath(base))


def refusal_reason(out, base, old_mnist, new_mnist, force):
    """Why the new model must not be written to `out`, or None."""
    drop = old_mnist - new_mnist
    if force or drop <= MAX_MNIST_DROP or not replaces_a_served_model(out, base):
        return None
    return (f"refused: MNIST test accuracy would drop by {drop * 100:.2f} points (limit "
            f"{MAX_MNIST_DROP * 100:.1f}); {out} is unchanged. Write elsewhere, or pass --force.")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m model.finetune", description=__doc__.splitlines()[0])
    p.add_argument("--base", default=DEFAULT_MODEL_PATH, help="model to start from (default: the shipped one)")
    p.add_argument("--corrections", required=True, help="file from python -m model.corrections export")
    p.add_argument("--data", help="directory with the MNIST IDX files (default: download and cache)")
    p.add_argument("--out", required=True, help="where to write the new model (.npz)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--mnist-subset", type=int, default=10000,
                   help="MNIST training images mixed in each run (0: all 60000)")
    p.add_argument("--weight", type=int, default=10,
                   help="how many times each correction is repeated in the training set")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="share of each label's corrections kept out of training to evaluate on")
    p.add_argument("--extra", action="append", default=[],
                   help=".npz with images/labels (label 10 = not a digit) rehearsed as well; repeatable")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine schedule to near zero)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--test-limit", type=int, default=0, help="evaluate on the first N MNIST test images (0: all)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--force", action="store_true",
                   help=f"write over the shipped model even if MNIST accuracy drops by more than "
                        f"{MAX_MNIST_DROP * 100:.1f} points")
    return p.parse_args(argv)


def main(argv=None, log=print):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    try:
        base_meta, base_params = modelfile.load(args.base)
        images, labels, corr_meta, corr_sha = corrections_file.load(args.corrections)
    except (modelfile.ModelFileError, corrections_file.CorrectionsFileError) as exc:
        sys.exit(str(exc))
    if len(labels) == 0:
        sys.exit(f"{args.corrections}: holds no corrections; nothing to learn from")
    norm = base_meta["input"]
    if any(float(norm.get(k, 0)) != float(NORMALIZATION[k]) for k in ("mean", "std", "scale")):
        sys.exit(f"{args.base}: input normalization {norm} differs from the trainer's; cannot fine-tune it")
    architecture = base_meta["architecture"]
    units = output_units(architecture)

    train_idx, held_idx = holdout_split(labels, args.holdout, rng)
    extra_x, extra_y = load_extra(args.extra)
    if extra_y.size and extra_y.max() >= units:
        sys.exit(f"--extra holds label {int(extra_y.max())} but {args.base} has {units} outputs")
    mnist = load_mnist(data_dir=args.data)
    mnist_x, mnist_y = mnist["train_images"], mnist["train_labels"].astype(np.int64)
    if args.mnist_subset:
        pick = rng.choice(len(mnist_x), size=min(args.mnist_subset, len(mnist_x)), replace=False)
        mnist_x, mnist_y = mnist_x[pick], mnist_y[pick]
    test_x, test_y = mnist["test_images"], mnist["test_labels"].astype(np.int64)
    if args.test_limit:
        test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]

    corr_x, corr_y = images[train_idx], labels[train_idx]
    train_x = np.concatenate([mnist_x, np.repeat(corr_x, args.weight, axis=0), extra_x])
    train_y = np.concatenate([mnist_y, np.repeat(corr_y, args.weight), extra_y])
    log(f"fine-tuning {args.base} ({units} outputs) on {len(mnist_x)} MNIST images + {len(corr_x)} "
        f"corrections x{args.weight}" + (f" + {len(extra_x)} extra" if len(extra_x) else "")
        + f", {len(held_idx)} corrections held out, {args.epochs} epoch(s)")

    net = Network(architecture, norm["shape"], seed=args.seed)
    net.load_state_dict(base_params)
    optimizer = make_optimizer("adam", net.parameters(), args.lr, args.weight_decay)
    rehearsed = bool(extra_y.size and (extra_y == NOT_A_DIGIT).any())
    not_digit_handling = None
    if units > 10:
        last = max(i for i, layer in enumerate(architecture) if layer["type"] == "dense")
        if rehearsed:
            not_digit_handling = "trained on the --extra examples labelled 10"
        else:
            layer = net.layers[last]
            optimizer = KeepOutputFixed(optimizer, [(layer.params["W"], (slice(None), slice(10, None))),
                                                    (layer.params["b"], slice(10, None))])
            not_digit_handling = "outputs 10+ held fixed (no not-a-digit examples given)"
        log(f"not-a-digit output: {not_digit_handling}")

    sets = {"MNIST test": (test_x, test_y), "held-out corrections": (images[held_idx], labels[held_idx]),
            "trained corrections": (corr_x, corr_y)}
    counts = {name: len(y) for name, (_, y) in sets.items()}
    old_model = Model(base_meta, base_params, args.base)
    started = time.perf_counter()
    with blas_single_threaded():
        before = evaluate(old_model, sets)
        state, history, _ = train(net, optimizer, train_x, train_y, None, None, epochs=args.epochs,
                                  batch_size=args.batch_size, base_lr=args.lr, rng=rng,
                                  augmenter=None if args.no_augment else Augmenter(), warmup_epochs=0,
                                  log=log)
        new_model = Model(base_meta, state)
        after = evaluate(new_model, sets)
        rejects = {"before": rejected_share(old_model, test_x), "after": rejected_share(new_model, test_x)}
    seconds = time.perf_counter() - started

    log(format_comparison(before, after, counts))
    if units > 10:
        log(f"MNIST test digits called not-a-digit: {percent(rejects['before'])} before, "
            f"{percent(rejects['after'])} after")
    replaces_shipped = replaces_a_served_model(args.out, args.base)
    refusal = refusal_reason(args.out, args.base, before["MNIST test"], after["MNIST test"], args.force)
    if refusal:
        log(refusal)
        return {"written": False, "before": before, "after": after}

    meta = dict(base_meta)
    for derived in ("weights_sha256", "format", "format_version"):
        meta.pop(derived, None)
    meta.update({
        "name": f"{base_meta.get('name', 'model')}-ft",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "test_accuracy": after["MNIST test"] if not args.test_limit else None,
        "history": history,
        "command": "python -m model.finetune " + " ".join(sys.argv[1:] if argv is None else argv),
        "finetune": {
            "base": {"path": os.path.abspath(args.base), "name": base_meta.get("name"),
                     "weights_sha256": base_meta.get("weights_sha256")},
            "corrections": {"path": os.path.abspath(args.corrections), "file_sha256": corr_sha,
                            "count": int(len(labels)), "per_label": corr_meta.get("per_label"),
                            "trained": int(len(train_idx)), "held_out": int(len(held_idx)),
                            "weight": args.weight, "source": corr_meta.get("source")},
            "mnist": {"train_images": int(len(mnist_x)), "data_sha256": mnist["sha256"],
                      "test_images": int(len(test_y))},
            "extra": {"paths": [os.path.abspath(p) for p in args.extra], "images": int(len(extra_x))},
            "not_digit": not_digit_handling,
            "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
            "augmentation": None if args.no_augment else Augmenter().config.as_dict(),
            "evaluation": {"before": before, "after": after, "not_digit_rejected_mnist_test": rejects},
            "seconds": round(seconds, 1),
        },
    })
    modelfile.save(args.out, meta, state)
    log(f"wrote {args.out}" + (" (replacing the model it started from)" if replaces_shipped else ""))
    return {"written": True, "before": before, "after": after, "meta": meta}


if __name__ == "__main__":
    main()
