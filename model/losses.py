"""Softmax cross-entropy, fused with its gradient (the numerically kind pairing)."""
import numpy as np

from . import ops


def softmax_cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean loss over the batch and d loss / d logits.

    Label smoothing spreads a little target mass over all classes, which keeps
    the network from becoming overconfident on drawings unlike MNIST's.
    """
    n, classes = logits.shape
    dtype = logits.dtype.type if logits.dtype.kind == "f" else np.float32
    probs = ops.softmax(logits.astype(dtype))  # a copy: the caller's logits stay as they were
    target = np.full((n, classes), label_smoothing / classes, dtype=dtype)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    loss = -np.sum(target * np.log(np.maximum(probs, 1e-12))) / n
    return float(loss), (probs - target) / dtype(n)


def sigmoid_quadratic(logits, labels, label_smoothing=0.0):
    """Nielsen's chapter-1 cost: half the squared distance between sigmoid
    outputs and the one-hot target, averaged over the batch; with it the
    classic "SGD at learning rate 3.0" reproduces his numbers. The slope
    a (1 - a) makes it learn slowly once an output saturates, the reason his
    chapter 3 moves on to cross-entropy."""
    n, classes = logits.shape
    dtype = logits.dtype.type if logits.dtype.kind == "f" else np.float32
    a = ops.sigmoid(logits.astype(dtype, copy=False))
    target = np.full((n, classes), label_smoothing / classes, dtype=dtype)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    diff = a - target
    loss = 0.5 * float(np.sum(diff * diff)) / n
    return loss, diff * a * (1 - a) / dtype(n)


LOSSES = {"cross-entropy": softmax_cross_entropy, "quadratic": sigmoid_quadratic}
