"""Layers with forward and backward passes, vectorized over the batch, float32, NHWC.

Each layer keeps what its backward pass needs from the last forward pass, holds
its parameters in `params` and fills `grads` with the same keys.
"""
import numpy as np

from . import ops
from .parallel import in_background, map_chunks, map_slices

DTYPE = np.float32


class Layer:
    """Base: a layer without parameters. Each instance owns its `params` and
    `grads` dicts, so filling one layer's never touches another's."""

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError


class Dense(Layer):
    """Fully connected: y = x W + b, W is (in, out)."""

    def __init__(self, n_in, n_out, rng):
        std = np.sqrt(2.0 / n_in)  # He initialization: keeps ReLU activations' variance steady
        self.params = {"W": (rng.standard_normal((n_in, n_out)) * std).astype(DTYPE),
                       "b": np.zeros(n_out, DTYPE)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x, training=False):
        self.x = x
        y = np.empty((x.shape[0], self.params["W"].shape[1]), np.result_type(x, self.params["W"]))
        _split_matmul(x, self.params["W"], y, by_rows=True)
        y += self.params["b"]
        return y

    def backward(self, dy):
        _split_matmul(self.x.T, dy, self.grads["W"], by_rows=False)
        dy.sum(axis=0, out=self.grads["b"])
        dx = np.empty(self.x.shape, np.result_type(dy, self.params["W"]))
        _split_matmul(dy, self.params["W"].T, dx, by_rows=True)
        return dx


# Below this many multiply-adds a product runs on the calling thread: handing a
# tiny one (the last layer's 128x10) to the pool costs more than it saves.
SPLIT_MATMUL_MIN = 1 << 20


def _split_matmul(a, b, out, by_rows):
    """out = a @ b with the pool's threads on separate rows (or columns) of out.

    The trainer holds BLAS to one thread (parallel.blas_single_threaded), which
    left the dense layers' GEMMs on one core (measured: 3.8 ms of a 90 ms CNN
    step at batch 128). Each element is still one dot product over the whole
    inner dimension, so the result is the same to the bit as one GEMM with
    OpenBLAS's SkylakeX kernels; its Haswell kernels round some row counts
    differently (tests/test_threaded_training.py), so there the split, fixed by
    the worker count, is part of what fixes the bits.
    """
    def run(chunk):
        s, e = chunk
        if by_rows:
            np.matmul(a[s:e], b, out=out[s:e])
        else:
            np.matmul(a, b[:, s:e], out=out[:, s:e])

    map_slices(run, out.shape[0] if by_rows else out.shape[1], a.shape[0] * a.shape[1] * b.shape[1],
               minimum=SPLIT_MATMUL_MIN)


class Conv2D(Layer):
    """Stride-1 convolution by im2col + GEMM, run over small batch chunks in parallel.

    Chunks of a few images keep each patch matrix (chunk*H*W rows x k*k*c columns)
    in cache between the copy that builds it and the GEMM that reads it; a whole
    batch's patch matrix (80 MB for the second layer at batch 128) would make every
    pass a trip to main memory. Backward rebuilds the patches per chunk instead of
    storing them, for the same reason. Requires k - 1 - padding >= 0 for the input
    gradient (true for every "same" or "valid" convolution).
    """

    CHUNK = ops.CHUNK
    # Images per patch matrix of the input gradient. Its rows are k*k*filters
    # wide (1600 floats for the shipped CNN's second layer: 1.25 MB per image),
    # so 8 images made a 10 MB matrix that left the cache before its GEMM read
    # it. Measured at batch 128 on 2 cores, median CNN step over interleaved
    # runs with 8, 4, 2, 1 images: 86-89, 86, 81-85, 76-78 ms. Each row of
    # dx is its own dot products, so any chunking gives the same bits with
    # OpenBLAS's SkylakeX kernels (checked there); its Haswell kernels round
    # some row counts differently, so there this chunk size is part of what
    # fixes the bits. CHUNK, which sets the order of the weight gradient's
    # sums, stays as it was.
    INPUT_GRAD_CHUNK = 1

    def __init__(self, c_in, filters, kernel, padding, rng, needs_input_grad=True):
        self.k, self.padding = kernel, padding
        std = np.sqrt(2.0 / (kernel * kernel * c_in))
        self.params = {"W": (rng.standard_normal((kernel, kernel, c_in, filters)) * std).astype(DTYPE),
                       "b": np.zeros(filters, DTYPE)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.needs_input_grad = needs_input_grad  # the first layer's input gradient is never used

    def _chunks(self, n):
        return ops.batch_chunks(n, self.CHUNK)

    def _patches(self):
        """The first layer's one-channel patches are built transposed (see
        ops.single_channel_patches: the same products to the bit, a quicker copy)."""
        return ops.single_channel_patches if self.params["W"].shape[2] == 1 else ops.im2col

    def forward(self, x, training=False):
        n, h, w, _ = x.shape
        k, p = self.k, self.padding
        self.out_hw = (ops.conv_output_size(h, k, p), ops.conv_output_size(w, k, p))
        self.in_shape = x.shape
        self.xp = ops.pad_hw(x, p)
        out = np.empty((n, *self.out_hw, self.params["W"].shape[-1]), x.dtype)

        patches = self._patches()

        def run(chunk):
            s, e = chunk
            ops.conv_chunk(self.xp[s:e], self.params["W"], self.params["b"], out[s:e], patches)

        map_chunks(run, self._chunks(n))
        return out

    def backward(self, dy):
        k, p = self.k, self.padding
        oh, ow = self.out_hw
        weight = self.params["W"]
        wmat = weight.reshape(-1, weight.shape[-1])
        n = dy.shape[0]
        chunks = self._chunks(n)
        if self.needs_input_grad:
            # The input gradient is a "full" convolution of dy with the flipped
            # kernel: one more im2col + GEMM, instead of scattering k*k patch
            # gradients back (col2im), which costs more than the GEMM itself.
            flipped = np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2))
            flipped = flipped.reshape(-1, weight.shape[2])
            dx = np.empty(self.in_shape, dy.dtype)
        h, w = self.in_shape[1:3]

        patches = self._patches()

        def run(chunk):
            s, e = chunk
            cols = patches(self.xp[s:e], k, oh, ow)
            dw = cols.T @ dy[s:e].reshape(-1, wmat.shape[1])
            if self.needs_input_grad:
                for a, b in ops.batch_chunks(e - s, self.INPUT_GRAD_CHUNK):
                    dyc = dy[s + a:s + b]
                    dy_cols = ops.im2col(ops.pad_hw(dyc, k - 1 - p), k, h, w)
                    np.matmul(dy_cols, flipped, out=dx[s + a:s + b].reshape(-1, weight.shape[2]))
            return dw

        # NumPy sums on one thread: 2 ms of the first layer's 4 ms backward at
        # batch 128, so the bias gradient is summed beside the chunks.
        bias_gradient = in_background(dy.sum, axis=(0, 1, 2))
        partial = map_chunks(run, chunks)
        # Summed in chunk order, not completion order: same seed, same weights.
        self.grads["W"][...] = np.sum(partial, axis=0).reshape(weight.shape)
        self.grads["b"][...] = bias_gradient()
        return dx if self.needs_input_grad else None


class MaxPool2D(Layer):
    """Non-overlapping max pooling. The gradient goes to the window's maximum.

    Placed before ReLU (max and ReLU commute, so the result is the same) the
    inputs are continuous conv outputs, where ties have probability zero.
    """

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x, training=False):
        n, h, w, c = x.shape
        s = self.size
        windows = x.reshape(n, h // s, s, w // s, s, c)
        y = np.empty((n, h // s, w // s, c), x.dtype)
        self.mask = np.empty(windows.shape, bool)

        def run(chunk):  # elementwise work is single-threaded in NumPy: split the batch
            a, b = chunk
            _window_max(windows[a:b], out=y[a:b])
            np.equal(windows[a:b], y[a:b, :, None, :, None, :], out=self.mask[a:b])

        map_slices(run, n, x.size)
        return y

    def backward(self, dy):
        s = self.size
        n, h2, w2, c = dy.shape
        dx = np.empty(self.mask.shape, dy.dtype)

        def run(chunk):
            a, b = chunk
            np.multiply(self.mask[a:b], dy[a:b, :, None, :, None, :], out=dx[a:b])

        map_slices(run, n, dx.size)
        return dx.reshape(n, h2 * s, w2 * s, c)


def _window_max(windows, out):
    """Max over the (n, h, s, w, s, c) windows into out, one window position at a
    time: NumPy's max over two strided axes at once walks the windows element
    by element (measured at batch 128: 3.1 against 2.0 ms for the first
    layer's pooling), and unlike ops.maxpool's rows-then-columns no temporary
    of half the input is made. Max is exact: the same bits in any order."""
    size = windows.shape[2]
    positions = [(i, j) for i in range(size) for j in range(size)]
    out[...] = windows[:, :, 0, :, 0]
    for i, j in positions[1:]:
        np.maximum(out, windows[:, :, i, :, j], out=out)


class ReLU(Layer):
    """max(x, 0), split over the pool's threads (elementwise NumPy runs on one)."""

    def forward(self, x, training=False):
        self.active = np.empty(x.shape, bool)
        y = np.empty_like(x)

        def run(chunk):
            a, b = chunk
            np.greater(x[a:b], 0, out=self.active[a:b])
            np.maximum(x[a:b], 0, out=y[a:b])

        map_slices(run, len(x), x.size)
        return y

    def backward(self, dy):
        dx = np.empty_like(dy)

        def run(chunk):
            a, b = chunk
            np.multiply(dy[a:b], self.active[a:b], out=dx[a:b])

        map_slices(run, len(dy), dy.size)
        return dx


class Sigmoid(Layer):
    """The classic tutorials' squashing unit; its slope is y (1 - y), at most 1/4,
    which is why sigmoid networks want the large learning rates of the 1990s."""

    def forward(self, x, training=False):
        self.y = ops.sigmoid(x)
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class Tanh(Layer):
    """Zero-centred sigmoid (LeCun 1998): slope 1 - y^2, up to 1 at the origin."""

    def forward(self, x, training=False):
        self.y = ops.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y * self.y)


class Flatten(Layer):
    def forward(self, x, training=False):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Dropout(Layer):
    """Inverted dropout: scaled at training time so inference is the identity."""

    def __init__(self, rate, rng):
        super().__init__()
        self.rate, self.rng = rate, rng

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = 1.0 - self.rate
        self.mask = (self.rng.random(x.shape, dtype=DTYPE) < keep) * DTYPE(1.0 / keep)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask
