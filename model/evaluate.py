"""Evaluate a model file on the MNIST test set.

    python -m model.evaluate MODEL.npz [--data DIR] [--plot DIR] [--batch-size N]

Prints test accuracy, per-class accuracy and the confusion matrix; with --plot
also writes training curves, the confusion matrix and the most confidently
wrong digits as PNGs. matplotlib is only needed for --plot (the 'plot' extra),
so it is imported there and nowhere else.
"""
import argparse
import os
import sys

import numpy as np

from .datasets import MnistError, load_mnist
from .download import DownloadError
from .idx import IdxError
from .inference import load_model
from .metrics import confusion_matrix, format_confusion, format_per_class
from .modelfile import ModelFileError

NUM_CLASSES = 10
PLOT_HINT = "--plot needs matplotlib, which is not installed: pip install '.[plot]'"


def predict_in_batches(model, images, batch_size):
    """Batching bounds peak memory (im2col of 10000 images at once is gigabytes)."""
    chunks = [model.predict_proba(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES), np.float32)


def most_confident_errors(probabilities, labels, limit):
    """Indices of wrong predictions, most confident first."""
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    confidence = probabilities[wrong, predictions[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def report(model, data, probabilities):
    labels = data["test_labels"]
    predictions = probabilities.argmax(axis=1)
    correct = int((predictions == labels).sum())
    total = len(labels)
    confusion = confusion_matrix(labels, predictions)
    identity = model.identity
    kind = "official MNIST test set" if data["official"] else "NOT the official MNIST test set"
    lines = [f"model: {identity['name']} (weights sha256 {identity['sha256']}) from {model.path}",
             f"data: {data['source']} ({kind}, {total} images)",
             f"test accuracy: {correct / total:.4f} ({correct}/{total})"]
    recorded = model.meta.get("test_accuracy")
    if isinstance(recorded, (int, float)):
        lines.append(f"recorded in the model file: {recorded:.4f}")
    lines += ["", "per-class accuracy:", format_per_class(confusion), "",
              "confusion matrix (rows: true digit, columns: predicted digit):",
              format_confusion(confusion)]
    return "\n".join(lines), confusion


def plot_history(history, path):
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [row.get("epoch", number) for number, row in enumerate(history, start=1)]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, accuracy_axes = fig.subplots(1, 2)
    loss_axes.plot(epochs, [row.get("loss") for row in history], marker="o")
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    for key, name in (("train_accuracy", "train"), ("val_accuracy", "validation")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            accuracy_axes.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=name)
    accuracy_axes.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    accuracy_axes.legend()
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.savefig(path, dpi=100)


def plot_confusion(confusion, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6), layout="constrained")
    axes = fig.subplots()
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (true, predicted), count in np.ndenumerate(confusion):
        axes.text(predicted, true, str(count), ha="center", va="center", fontsize=7,
                  color="white" if share[true, predicted] > 0.5 else "black")
    axes.set(xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES),
             xlabel="predicted digit", ylabel="true digit", title="confusion matrix (test set)")
    fig.colorbar(image, ax=axes, label="share of the true digit's images")
    fig.savefig(path, dpi=100)


def plot_errors(images, labels, probabilities, indices, path):
    from matplotlib.figure import Figure

    columns = min(6, len(indices))
    rows = -(-len(indices) // columns)
    fig = Figure(figsize=(1.6 * columns, 1.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, index in zip(axes, indices):
        predicted = int(probabilities[index].argmax())
        ax.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"#{index}: true {labels[index]}\nsaid {predicted} ({probabilities[index, predicted]:.2f})",
                     fontsize=8)
    fig.suptitle("most confidently wrong test digits")
    fig.savefig(path, dpi=100)


def write_plots(directory, model, data, probabilities, confusion, max_errors=36):
    """Returns the paths written; prints why a plot is skipped."""
    os.makedirs(directory, exist_ok=True)
    written = []
    history = model.meta.get("history")
    if isinstance(history, list) and history and all(isinstance(row, dict) for row in history):
        written.append(os.path.join(directory, "training_curves.png"))
        plot_history(history, written[-1])
    else:
        print("no training history in the model file; skipping training_curves.png")
    written.append(os.path.join(directory, "confusion_matrix.png"))
    plot_confusion(confusion, written[-1])
    errors = most_confident_errors(probabilities, data["test_labels"], max_errors)
    if len(errors):
        written.append(os.path.join(directory, "confident_errors.png"))
        plot_errors(data["test_images"], data["test_labels"], probabilities, errors, written[-1])
    else:
        print("no misclassified test digits; skipping confident_errors.png")
    return written


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model file (.npz)")
    parser.add_argument("--data", metavar="DIR",
                        help="directory with the MNIST IDX files (default: download into the cache)")
    parser.add_argument("--plot", metavar="DIR", help="also write PNG plots into DIR (needs matplotlib)")
    parser.add_argument("--batch-size", type=positive_int, default=100, metavar="N",
                        help="images per forward pass (default 100: peak memory ~150 MB for the CNN)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (fail before the slow part, not after)
        except ImportError:
            print(f"error: {PLOT_HINT}", file=sys.stderr)
            return 2
    try:
        model = load_model(args.model)
        data = load_mnist(args.data, splits=("test",))
    except (ModelFileError, MnistError, IdxError, DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    probabilities = predict_in_batches(model, data["test_images"], args.batch_size)
    text, confusion = report(model, data, probabilities)
    print(text)
    if args.plot:
        print()
        for path in write_plots(args.plot, model, data, probabilities, confusion):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
