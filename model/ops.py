"""Forward primitives shared by the trainer and the inference module.

Everything is NHWC float32: with channels last, a convolution is one GEMM of
image patches (rows) against filters (columns), and its output is already in
the layout the next layer wants, so no transposes sit on the hot path.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_hw(x, padding):
    """Zero-pad the two spatial axes of an NHWC batch."""
    if padding == 0:
        return x
    n, h, w, c = x.shape
    out = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=x.dtype)
    out[:, padding:padding + h, padding:padding + w, :] = x
    return out


def im2col(xp, k, out_h, out_w):
    """Patches of a padded NHWC batch as rows ordered (kh, kw, c).

    A strided window view copied once into a contiguous matrix: one pass over
    memory instead of k*k scattered copies. Callers keep the batch small (a few
    images) so this matrix stays in cache for the GEMM that follows.
    """
    n, _, _, c = xp.shape
    windows = sliding_window_view(xp, (k, k), axis=(1, 2))  # (n, out_h, out_w, c, k, k)
    cols = np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(n * out_h * out_w, k * k * c)


def conv2d(x, weight, bias, padding):
    """Stride-1 convolution; weight is (k, k, c_in, c_out). Returns (y, cols)."""
    k = weight.shape[0]
    n, h, w, _ = x.shape
    out_h, out_w = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    cols = im2col(pad_hw(x, padding), k, out_h, out_w)
    y = cols @ weight.reshape(-1, weight.shape[-1])
    y += bias
    return y.reshape(n, out_h, out_w, -1), cols


def maxpool(x, size):
    """Non-overlapping max pooling (size x size windows, stride size)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // size, size, w // size, size, c).max(axis=(2, 4))


def relu(x):
    return np.maximum(x, 0, out=np.empty_like(x))


def dense(x, weight, bias):
    y = x @ weight
    y += bias
    return y


def softmax(logits):
    """Row-wise softmax, shifted by the row max so exp never overflows."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
