"""Accuracy and confusion matrices, shared by the trainer and the evaluation CLI."""
import numpy as np


def confusion_matrix(labels, predictions, classes=10):
    """Rows are true digits, columns predicted digits."""
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, np.intp), np.asarray(predictions, np.intp)), 1)
    return cm


def per_class_accuracy(cm):
    totals = cm.sum(axis=1)
    return np.divide(np.diag(cm), totals, out=np.zeros(len(cm)), where=totals > 0)


def format_confusion(cm):
    """Aligned text table, true digit down, predicted digit across."""
    width = max(5, len(str(cm.max())) + 1)
    head = "true\\pred" + "".join(f"{d:>{width}}" for d in range(len(cm))) + f"{'acc':>8}"
    acc = per_class_accuracy(cm)
    rows = [f"{t:>9}" + "".join(f"{v:>{width}}" for v in row) + f"{acc[t] * 100:>7.2f}%"
            for t, row in enumerate(cm)]
    return "\n".join([head, *rows])
