"""Train a network on MNIST and write it as one `.npz` (python -m model.train --help).

The loop is Nielsen's: shuffle, take a mini-batch, forward, backward, step. What
is added is what makes it a product: augmentation, a learning-rate schedule,
keeping the best epoch, an atomic model file and a reproducible run.
"""
import argparse
import datetime as dt
import sys
import time

import numpy as np
from tqdm import tqdm

from . import archspec, modelfile, rejection
from .augment import AugmentConfig, Augmenter
from .averaging import WeightAverage, snapshot_every
from .calibrate import not_digit_meta
from .datasets import load_extra, load_mnist
from .evaluate import positive_int
from .kaggle_csv import read_kaggle_csv
from .losses import LOSSES, softmax_cross_entropy
from .metrics import confusion_matrix, format_confusion, format_per_class
from .network import Network
from .optimizers import SCHEDULES, constant, make_optimizer, warmup_cosine
from .parallel import blas_single_threaded

NORMALIZATION = {"shape": [28, 28, 1], "layout": "NHWC", "scale": 255.0, "mean": 0.1307, "std": 0.3081}


def normalize(images01):
    """[0, 1] floats -> the network's input: zero-mean, unit-variance over MNIST."""
    x = (images01 - np.float32(NORMALIZATION["mean"])) / np.float32(NORMALIZATION["std"])
    return x[..., None]


def predict_logits(net, images_u8, batch_size=500):
    out = []
    for s in range(0, len(images_u8), batch_size):
        batch = images_u8[s:s + batch_size].astype(np.float32) / np.float32(255)
        out.append(net.forward(normalize(batch), training=False))
    return np.concatenate(out)


def accuracy(net, images_u8, labels):
    """Share of digits read right; a not-a-digit output never counts as an answer here."""
    return float(np.mean(predict_logits(net, images_u8)[:, :10].argmax(axis=1) == labels))


def with_classes(architecture, classes):
    """The architecture with its last dense layer widened to `classes` outputs."""
    layers = [dict(layer) for layer in architecture]
    last = max(i for i, layer in enumerate(layers) if layer["type"] == "dense")
    layers[last]["units"] = classes
    return layers


def split_validation(images, labels, val_size, rng):
    """Hold out a random, fixed (by seed) validation set; 0 keeps everything for training."""
    if val_size <= 0:
        return images, labels, None, None
    order = rng.permutation(len(images))
    val, train = order[:val_size], order[val_size:]
    return images[train], labels[train], images[val], labels[val]


def train(net, optimizer, train_x, train_y, val_x, val_y, *, epochs, batch_size, base_lr, rng,
          augmenter=None, warmup_epochs=1, label_smoothing=0.0, log=print,
          schedule=warmup_cosine, loss_fn=softmax_cross_entropy, after_step=None):
    """Returns (best_state, history, best_epoch). Best = highest validation accuracy,
    or the last epoch when there is no validation set (the schedule ends near zero).
    `after_step(step, steps_per_epoch)` runs after every optimizer step (weight averaging)."""
    steps_per_epoch = int(np.ceil(len(train_x) / batch_size))
    total_steps = epochs * steps_per_epoch
    history, best = [], (-1.0, None, 0)
    step = 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(train_x))
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{epochs}", leave=False,
                   disable=None, unit="batch", dynamic_ncols=True)
        for b in bar:
            idx = order[b * batch_size:(b + 1) * batch_size]
            batch = train_x[idx].astype(np.float32) / np.float32(255)
            if augmenter is not None:
                batch = augmenter(batch, rng)
            labels = train_y[idx]
            logits = net.forward(normalize(batch), training=True)
            loss, dlogits = loss_fn(logits, labels, label_smoothing)
            net.backward(dlogits)
            optimizer.lr = schedule(step, total_steps, base_lr, warmup_epochs * steps_per_epoch)
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(step, steps_per_epoch)
            seen += len(idx)
            correct += int(np.sum(logits.argmax(axis=1) == labels))
            loss_sum += loss * len(idx)
            if b % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        bar.close()
        record = {"epoch": epoch, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "val_accuracy": accuracy(net, val_x, val_y) if val_x is not None else None,
                  "lr": optimizer.lr, "seconds": time.perf_counter() - start}
        history.append(record)
        val_text = f"val_acc {record['val_accuracy'] * 100:.2f}%" if val_x is not None else "val_acc -"
        log(f"epoch {epoch:>2}/{epochs}  loss {record['loss']:.4f}  train_acc {record['train_accuracy'] * 100:.2f}%  "
            f"{val_text}  lr {record['lr']:.2e}  {record['seconds']:.1f}s")
        score = record["val_accuracy"] if val_x is not None else epoch
        if score >= best[0]:
            best = (score, net.state_dict(), epoch)
    return best[1], history, best[2]


def train_averaged(net, optimizer, train_x, train_y, *, epochs, batch_size, lr, rng, augmenter=None,
                   per_epoch=4, label_smoothing=0.0, loss_fn=softmax_cross_entropy, log=print):
    """`epochs` more passes at the constant rate `lr`; returns the mean of the
    weights snapshotted `per_epoch` times an epoch (model/averaging.py says why)."""
    average = WeightAverage()

    def snapshot(step, steps_per_epoch):
        if step % snapshot_every(steps_per_epoch, per_epoch) == 0:
            average.add(net.state_dict())

    log(f"weight averaging: {epochs} epochs at lr {lr:.1e}, {per_epoch} snapshots an epoch")
    train(net, optimizer, train_x, train_y, None, None, epochs=epochs, batch_size=batch_size, base_lr=lr,
          rng=rng, augmenter=augmenter, warmup_epochs=0, label_smoothing=label_smoothing, log=log,
          schedule=constant, loss_fn=loss_fn, after_step=snapshot)
    log(f"averaged {average.count} snapshots")
    return average.mean()


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every real default; unset (None), off flags and empty lists say nothing."""

    def _get_help_string(self, action):
        default = action.default
        if default is None or default is False or default == "" or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    """Defaults are the first stage of the shipped recipe (`make train` adds a second), shown by --help."""
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0],
                                formatter_class=_ShowDefaults)
    p.add_argument("--arch", type=arch_argument, default="cnn",
                   help=f"one of {', '.join(archspec.names())}, or a spec such as "
                   "\"dense:128,relu,dense:64,relu,dense:10\" (see model/archspec.py)")
    p.add_argument("--epochs", type=int, default=12, help="passes over the training images")
    p.add_argument("--batch-size", type=int, default=128, help="images per optimizer step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine schedule)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="adam, or sgd with Nesterov momentum")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0: plain SGD)")
    p.add_argument("--schedule", choices=sorted(SCHEDULES), default="warmup-cosine",
                   help="how the learning rate moves over the run")
    p.add_argument("--loss", choices=sorted(LOSSES), default="cross-entropy",
                   help="quadratic: sigmoid outputs and squared error, as in Nielsen's chapter 1")
    p.add_argument("--weight-decay", type=float, default=0.01, help="decoupled weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="share of each target spread over the other classes")
    p.add_argument("--average-epochs", type=int, default=3,
                   help="after the schedule, this many epochs at --average-lr whose weights are averaged (SWA)")
    p.add_argument("--average-lr", type=float, default=2e-4, help="the constant learning rate while averaging")
    p.add_argument("--init", metavar="NPZ",
                   help="start from this model file's weights (same architecture) instead of random ones")
    p.add_argument("--seed", type=int, default=1, help="seeds initialisation, shuffling and augmentation")
    p.add_argument("--val-split", type=int, default=0,
                   help="training images held out to pick the best epoch (0: train on all, keep the last)")
    p.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    p.add_argument("--augment-off", default="", help="comma list of augmentations to switch off "
                   "(rotate,scale,shear,shift,elastic,thickness), for ablations")
    p.add_argument("--data", help="directory with the four MNIST IDX files (default: download and cache)")
    p.add_argument("--cache-dir", help="where downloads are cached (default ~/.cache/digitdraw/mnist)")
    p.add_argument("--kaggle-csv", help="train on a Kaggle 'Digit Recognizer' train.csv instead of MNIST")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
    p.add_argument("--mnist-repeat", type=positive_int, default=1, metavar="N",
                   help="each MNIST training image appears N times an epoch (with its own augmentation "
                        "each time): weighs MNIST against the --extra images")
    p.add_argument("--extra", action="append", default=[], metavar="NPZ",
                   help="more training images (tools.pen_dataset output; label 10 = not a digit); repeatable. "
                        "The shipped recipe (make train) adds runs/pen_train.npz and runs/pen_styles.npz")
    p.add_argument("--calibrate", metavar="NPZ",
                   help="held-out digits and non-digits that set the not-a-digit threshold "
                        "(make train: runs/pen_calibrate.npz)")
    p.add_argument("--digit-flag-rate", type=float, default=rejection.DIGIT_FLAG_RATE,
                   help="share of the calibration digits allowed to be called 'not a digit', in each canvas variant")
    p.add_argument("--out", default="runs/mnist_cnn.npz",
                   help="output .npz path, written atomically (`make promote` ships it)")
    p.add_argument("--name", help="model name stored in the file (default: mnist-ARCH, mnist-pen-ARCH with --extra)")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def arch_argument(text):
    """argparse type: a preset or spec, checked now so a typo is a usage error."""
    try:
        archspec.resolve(text)
    except archspec.ArchSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def load_data(args):
    """(train_x, train_y, test_x, test_y, data checksums); test is None for Kaggle CSV."""
    if args.kaggle_csv:
        table = read_kaggle_csv(args.kaggle_csv)
        if table["labels"] is None:
            sys.exit(f"{args.kaggle_csv}: has no label column; train.csv is needed for training")
        return table["images"], table["labels"], None, None, {}
    data = load_mnist(data_dir=args.data, cache_dir=args.cache_dir)
    return (data["train_images"], data["train_labels"], data["test_images"], data["test_labels"],
            data["sha256"])


def init_weights(net, architecture, path):
    """Load a model file's weights into `net`, refusing another architecture
    (a silent partial load would train something nobody asked for)."""
    meta, params = modelfile.load(path)
    if meta["architecture"] != architecture:
        sys.exit(f"{path}: its architecture is not the one being trained; pass the same --arch")
    net.load_state_dict(params)


def augment_config(args):
    if args.no_augment:
        return None
    off = [name for name in args.augment_off.split(",") if name]
    return AugmentConfig.without(*off)


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train_x, train_y, test_x, test_y, checksums = load_data(args)
    if args.limit:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    train_x, train_y, val_x, val_y = split_validation(train_x, train_y, args.val_split, rng)
    mnist_x, mnist_y = train_x, train_y
    extra_meta = []
    for path in args.extra:
        images, labels, meta = load_extra(path)
        train_x, train_y = np.concatenate([train_x, images]), np.concatenate([train_y, labels])
        extra_meta.append({"file": path.rsplit("/", 1)[-1], **meta})
    if args.mnist_repeat > 1:  # the copies go after the extras: an epoch is shuffled, only the count matters
        train_x = np.concatenate([train_x] + [mnist_x] * (args.mnist_repeat - 1))
        train_y = np.concatenate([train_y] + [mnist_y] * (args.mnist_repeat - 1))
    classes = 11 if np.any(train_y == rejection.NOT_A_DIGIT) else 10
    print(f"training {args.arch} on {len(train_x)} images"
          f"{f', validating on {len(val_x)}' if val_x is not None else ''}, {args.epochs} epochs", flush=True)

    architecture = with_classes(archspec.resolve(args.arch), classes)
    net = Network(architecture, NORMALIZATION["shape"], seed=args.seed)
    optimizer = make_optimizer(args.optimizer, net.parameters(), args.lr, args.weight_decay, args.momentum)
    aug_cfg = augment_config(args)
    started = time.perf_counter()
    if args.init:
        init_weights(net, architecture, args.init)
    augmenter = Augmenter(aug_cfg) if aug_cfg else None
    with blas_single_threaded():
        best_state, history, best_epoch = train(
            net, optimizer, train_x, train_y, val_x, val_y, epochs=args.epochs, batch_size=args.batch_size,
            base_lr=args.lr, rng=rng, augmenter=augmenter,
            label_smoothing=args.label_smoothing, schedule=SCHEDULES[args.schedule], loss_fn=LOSSES[args.loss]
        ) if args.epochs else (net.state_dict(), [], 0)
        net.load_state_dict(best_state)
        if args.average_epochs:
            best_state = train_averaged(
                net, optimizer, train_x, train_y, epochs=args.average_epochs, batch_size=args.batch_size,
                lr=args.average_lr, rng=rng, augmenter=augmenter, label_smoothing=args.label_smoothing,
                loss_fn=LOSSES[args.loss])
            net.load_state_dict(best_state)
        seconds = time.perf_counter() - started
        kept = (f"the average of {args.average_epochs} more epochs' weights" if args.average_epochs else
                f"epoch {best_epoch} ({'best validation accuracy' if val_x is not None else 'last epoch'})")
        print(f"kept {kept}; training took {seconds:.0f}s")
        test_acc, cm = None, None
        if test_x is not None:
            predictions = predict_logits(net, test_x)[:, :10].argmax(axis=1)
            test_acc = float(np.mean(predictions == test_y))
            cm = confusion_matrix(test_y, predictions)
        not_digit = None
        if classes == 11 and args.calibrate:
            not_digit = not_digit_meta(lambda images: predict_logits(net, images), args.calibrate,
                                       args.digit_flag_rate)
            print(f"not-a-digit threshold {not_digit['threshold']:.4f}: on the calibration writers "
                  f"{not_digit['digits_flagged']:.2%} of digits and "
                  f"{(not_digit['non_digits_flagged'] or 0):.2%} of non-digits flagged")
        elif classes == 11:
            not_digit = {"class": rejection.NOT_A_DIGIT, "threshold": 0.5, "target_digit_flag_rate": None}

    meta = {
        "name": args.name or (f"mnist-{args.arch}" if not args.extra else f"mnist-pen-{args.arch}"),
        "architecture": architecture,
        "input": NORMALIZATION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "test_accuracy": test_acc,
        "training": {
            "data": "kaggle-csv" if args.kaggle_csv else "mnist",
            "data_sha256": checksums, "extra_data": extra_meta, "classes": classes,
            "train_images": int(len(train_x)), "mnist_repeat": args.mnist_repeat,
            "val_images": int(len(val_x)) if val_x is not None else 0,
            "epochs": args.epochs, "best_epoch": best_epoch, "batch_size": args.batch_size,
            "optimizer": args.optimizer, "lr": args.lr, "schedule": args.schedule,
            "momentum": args.momentum, "loss": args.loss,
            "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing, "seed": args.seed,
            "augmentation": aug_cfg.as_dict() if aug_cfg else None, "seconds": round(seconds, 1),
            "init": args.init.rsplit("/", 1)[-1] if args.init else None,
            "average_epochs": args.average_epochs, "average_lr": args.average_lr if args.average_epochs else None,
            "numpy": np.__version__,
        },
        "history": history,
        **({"not_digit": not_digit} if not_digit else {}),
        "command": "python -m model.train " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    modelfile.save(args.out, meta, best_state)
    print(f"wrote {args.out}")
    if test_acc is not None:
        print(f"test accuracy: {test_acc * 100:.2f}% ({int(np.trace(cm))}/{int(cm.sum())})")
        print(format_per_class(cm))
        print(format_confusion(cm))
    return meta


if __name__ == "__main__":
    main()
