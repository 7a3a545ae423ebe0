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


CHUNK = 8  # images per patch matrix: small enough to stay in cache for its GEMM


def conv_output_size(size, kernel, padding):
    """Output length of a stride-1 convolution along one spatial axis."""
    return size + 2 * padding - kernel + 1


def batch_chunks(n, size=CHUNK):
    """(start, end) slices of a batch of n, `size` images each (the last may be shorter)."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def conv_chunk(xp, weight, bias, out):
    """Convolve a few padded images into `out` (n, out_h, out_w, filters)."""
    cols = im2col(xp, weight.shape[0], out.shape[1], out.shape[2])
    y = out.reshape(-1, weight.shape[-1])
    np.matmul(cols, weight.reshape(-1, weight.shape[-1]), out=y)
    y += bias


def conv2d(x, weight, bias, padding):
    """Stride-1 convolution; weight is (k, k, c_in, c_out). Runs chunk by chunk
    so no patch matrix of the whole batch (gigabytes for 10,000 images) exists."""
    k = weight.shape[0]
    n, h, w, _ = x.shape
    xp = pad_hw(x, padding)
    out = np.empty((n, conv_output_size(h, k, padding), conv_output_size(w, k, padding), weight.shape[-1]),
                   x.dtype)
    for s, e in batch_chunks(n):
        conv_chunk(xp[s:e], weight, bias, out[s:e])
    return out


def maxpool(x, size):
    """Non-overlapping max pooling (size x size windows, stride size)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // size, size, w // size, size, c).max(axis=(2, 4))


def relu(x):
    return np.maximum(x, 0, out=np.empty_like(x))


def sigmoid(x):
    """Logistic function written as 0.5 * (1 + tanh(x / 2)): the same value, but
    no exp that overflows for large negative inputs (float32 exp(89) is inf)."""
    y = np.multiply(x, x.dtype.type(0.5), out=np.empty_like(x))
    np.tanh(y, out=y)
    y += 1
    y *= x.dtype.type(0.5)
    return y


def tanh(x):
    return np.tanh(x)


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
