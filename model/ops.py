"""Forward primitives shared by the trainer and the inference module.

Everything is NHWC float32: with channels last, a convolution is one GEMM of
image patches (rows) against filters (columns), and its output is already in
the layout the next layer wants, so no transposes sit on the hot path.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided


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
    images) so this matrix stays in cache for the GEMM that follows. The view
    is made with `as_strided` directly: `sliding_window_view` builds the same
    view but its checks cost more than the copy for one 28x28 image (measured
    at batch 1: 55-80 us against 25-35 us per layer).
    """
    n, h, w, c = xp.shape
    if not (out_h == h - k + 1 and out_w == w - k + 1 and k >= 1):
        raise ValueError(f"im2col: a {k}x{k} window over {h}x{w} gives {h - k + 1}x{w - k + 1}, "
                         f"not {out_h}x{out_w}")
    s0, s1, s2, s3 = xp.strides
    windows = as_strided(xp, (n, out_h, out_w, k, k, c), (s0, s1, s2, s1, s2, s3), writeable=False)
    return np.ascontiguousarray(windows).reshape(n * out_h * out_w, k * k * c)


CHUNK = 8  # images per patch matrix: small enough to stay in cache for its GEMM


def conv_output_size(size, kernel, padding):
    """Output length of a stride-1 convolution along one spatial axis."""
    return size + 2 * padding - kernel + 1


def batch_chunks(n, size=CHUNK):
    """(start, end) slices of a batch of n, `size` images each (the last may be shorter)."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def single_channel_patches(xp, k, out_h, out_w):
    """`im2col` of a one-channel batch (a network's first layer), built transposed.

    With one channel a patch row is k*k scattered single floats, and the
    strided copy moved them one at a time; built as k*k rows of whole image
    rows instead and handed to the GEMM as its transpose, the copy runs over
    contiguous runs (measured on the shipped CNN's first layer, one image:
    39 against 63 us for the convolution). OpenBLAS packs either layout into
    the same panels, so the products are the same to the bit (tested).
    """
    n, h, w, c = xp.shape
    if c != 1 or not (out_h == h - k + 1 and out_w == w - k + 1 and k >= 1):
        raise ValueError(f"single_channel_patches: {c} channels, a {k}x{k} window over {h}x{w} "
                         f"for {out_h}x{out_w}")
    s0, s1, s2, _ = xp.strides
    windows = as_strided(xp, (k, k, n, out_h, out_w), (s1, s2, s0, s1, s2), writeable=False)
    return np.ascontiguousarray(windows).reshape(k * k, n * out_h * out_w).T


def conv_chunk(xp, weight, bias, out, patches=im2col):
    """Convolve a few padded images into `out` (n, out_h, out_w, filters)."""
    cols = patches(xp, weight.shape[0], out.shape[1], out.shape[2])
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
    patches = single_channel_patches if x.shape[-1] == 1 else im2col
    for s, e in batch_chunks(n):
        conv_chunk(xp[s:e], weight, bias, out[s:e], patches)
    return out


def maxpool(x, size):
    """Non-overlapping max pooling (size x size windows, stride size).

    Taken as elementwise maxima of whole rows of windows, then of columns:
    NumPy's max over two strided axes at once walks the windows element by
    element and cost 2-3x as much (measured: 86 against 27 us for one
    28x28x32 map, 816 against 174 us for eight). Max is exact, so the result
    is the same to the bit in any order.
    """
    n, h, w, c = x.shape
    windows = x.reshape(n, h // size, size, w // size, size, c)
    if size == 1:
        return windows[:, :, 0, :, 0].copy()
    rows = np.maximum(windows[:, :, 0], windows[:, :, 1])
    for i in range(2, size):
        np.maximum(rows, windows[:, :, i], out=rows)
    out = np.maximum(rows[:, :, :, 0], rows[:, :, :, 1])
    for j in range(2, size):
        np.maximum(out, rows[:, :, :, j], out=out)
    return out


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


# Above this share of nonzero inputs, gathering their weight rows costs more
# than reading the whole matrix.
SPARSE_INPUT_SHARE = 0.5


def dense_skipping_zeros(x, weight, bias):
    """`dense`, image by image over the nonzero inputs only: the same sum
    without its zero terms (only the order of additions differs, a float32
    rounding: 1e-6 of the logits).

    For inference after a ReLU: on drawn digits 89-91% of the shipped CNN's
    3136 inputs to its first dense layer are exactly zero, and that layer's
    1.6 MB matrix, evicted by decoding between requests, was read from memory
    in full for every image (measured in a request: ~190 us; its nonzero
    rows: ~35 us). Row by row, so an image's answer does not depend on
    the batch it came in.
    """
    out = np.empty((x.shape[0], weight.shape[1]), np.result_type(x, weight))
    for row, y in zip(x, out):
        nonzero = np.flatnonzero(row)
        if nonzero.size > SPARSE_INPUT_SHARE * row.size:
            np.matmul(row, weight, out=y)
        else:
            np.matmul(row[nonzero], weight.take(nonzero, axis=0), out=y)
    out += bias
    return out


def softmax(logits):
    """Row-wise softmax, shifted by the row max so exp never overflows."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
