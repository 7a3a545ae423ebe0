"""Confusion matrices and their text tables, shared by the trainer and the evaluation CLI."""
import numpy as np

NUM_CLASSES = 10


def confusion_matrix(labels, predictions, num_classes=NUM_CLASSES):
    """counts[true, predicted]."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def format_per_class(confusion):
    counts = confusion.sum(axis=1)
    correct = np.diag(confusion)
    lines = ["digit  count  correct  accuracy"]
    for digit in range(len(confusion)):
        accuracy = f"{correct[digit] / counts[digit]:.4f}" if counts[digit] else "n/a"
        lines.append(f"{digit:>5}  {counts[digit]:>5}  {correct[digit]:>7}  {accuracy:>8}")
    return "\n".join(lines)


def format_confusion(confusion):
    width = max(len(str(int(confusion.max()))), 1) + 2
    label = "true\\pred"
    lines = [label + "".join(f"{d:>{width}}" for d in range(len(confusion)))]
    for digit, row in enumerate(confusion):
        lines.append(f"{digit:>{len(label)}}" + "".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)
