"""The trainer's threaded paths give the same bits as the single NumPy calls they
replace, so splitting work over the pool changes how fast a model trains, never
which model comes out (same seed, same data, same machine -> same weights).

One exception, the BLAS's own: OpenBLAS's Haswell kernels round a row's sum
differently depending on how many rows a GEMM is given (its SkylakeX kernels do
not; measured 2026-12-03: x[:32] @ W differs from (x @ W)[:32] in the last bits,
x[:24] does not). There a GEMM split over the pool equals the same slices
multiplied one after another, to the bit, and one GEMM to float32 rounding.

Sizes are above the thresholds below which work stays on the calling thread,
and each test also checks that the split really happened.
"""
import numpy as np
import pytest

from model import layers, ops, parallel
from model.optimizers import Adam

needs_two_workers = pytest.mark.skipif(parallel.WORKERS < 2, reason="one usable CPU: nothing is split")


@pytest.fixture
def split_calls(monkeypatch):
    """How many times work was handed to the pool (map_chunks with several chunks)."""
    calls = []
    original = parallel.map_chunks

    def counting(fn, chunks):
        if len(chunks) > 1:
            calls.append(len(chunks))
        return original(fn, chunks)

    monkeypatch.setattr(parallel, "map_chunks", counting)
    monkeypatch.setattr(layers, "map_chunks", counting)
    return calls


def test_dense_split_over_threads_matches_one_gemm_to_the_bit(split_calls):
    rng = np.random.default_rng(0)
    layer = layers.Dense(3136, 128, rng)
    layer.params["b"][...] = rng.standard_normal(128).astype(np.float32)
    x = rng.standard_normal((64, 3136)).astype(np.float32)
    dy = rng.standard_normal((64, 128)).astype(np.float32)

    w = layer.params["W"]
    rows, columns = parallel.worker_slices(64), parallel.worker_slices(128)
    y = layer.forward(x, training=True)
    expected = np.concatenate([x[s:e] @ w for s, e in rows])
    expected += layer.params["b"]
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(y, x @ w + layer.params["b"], rtol=1e-5, atol=1e-5)

    dx = layer.backward(dy)
    np.testing.assert_array_equal(layer.grads["W"], np.concatenate([x.T @ dy[:, s:e] for s, e in columns], axis=1))
    np.testing.assert_allclose(layer.grads["W"], x.T @ dy, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(layer.grads["b"], dy.sum(axis=0))
    np.testing.assert_array_equal(dx, np.concatenate([dy[s:e] @ w.T for s, e in rows]))
    np.testing.assert_allclose(dx, dy @ w.T, rtol=1e-5, atol=1e-5)
    if parallel.WORKERS > 1:
        assert len(split_calls) == 3  # forward, weight gradient, input gradient


def test_small_dense_layer_stays_on_the_calling_thread(split_calls):
    rng = np.random.default_rng(1)
    layer = layers.Dense(128, 10, rng)
    x = rng.standard_normal((32, 128)).astype(np.float32)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, x @ layer.params["W"] + layer.params["b"])
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), np.ones_like(y) @ layer.params["W"].T)
    assert split_calls == []


def test_relu_split_over_threads_matches_numpy(split_calls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((128, 14, 14, 32)).astype(np.float32)
    x[0, 0, 0, :4] = (0.0, -0.0, np.inf, -np.inf)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    relu = layers.ReLU()
    np.testing.assert_array_equal(relu.forward(x, training=True), np.maximum(x, 0))
    np.testing.assert_array_equal(relu.backward(dy), dy * (x > 0))
    if parallel.WORKERS > 1:
        assert len(split_calls) == 2


def test_maxpool_matches_numpys_max_over_windows():
    rng = np.random.default_rng(3)
    for size, shape in ((2, (16, 28, 28, 32)), (3, (5, 9, 12, 4))):
        x = rng.standard_normal(shape).astype(np.float32)
        n, h, w, c = shape
        expected = x.reshape(n, h // size, size, w // size, size, c).max(axis=(2, 4))
        np.testing.assert_array_equal(layers.MaxPool2D(size).forward(x, training=True), expected)


def test_adam_on_one_big_tensor_equals_adam_on_its_pieces(split_calls):
    """The update is elementwise: a tensor the pool updates in slices must end
    bit-equal to the same numbers updated as small tensors on one thread."""
    rng = np.random.default_rng(4)
    big = rng.standard_normal((400, 500)).astype(np.float32)
    start = big.copy()
    pieces = [row.copy() for row in np.array_split(big, 8)]
    big_grad = np.zeros_like(big)
    piece_grads = [np.zeros_like(p) for p in pieces]
    whole = Adam([(big, big_grad, True)], lr=0.01, weight_decay=0.1)
    split = Adam([(p, g, True) for p, g in zip(pieces, piece_grads)], lr=0.01, weight_decay=0.1)
    for _ in range(3):
        grad = rng.standard_normal(big.shape).astype(np.float32)
        big_grad[...] = grad
        for g, part in zip(piece_grads, np.array_split(grad, 8)):
            g[...] = part
        whole.step()
        split.step()
    assert np.mean(big != start) > 0.99  # the weights moved, so equal results are no accident
    np.testing.assert_array_equal(big, np.concatenate(pieces))
    if parallel.WORKERS > 1:
        assert len(split_calls) == 3  # the big tensor, once per step; the pieces are small


def test_conv_input_gradient_does_not_depend_on_its_chunking():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((11, 10, 10, 6)).astype(np.float32)
    dy = rng.standard_normal((11, 10, 10, 8)).astype(np.float32)
    results = []
    for input_grad_chunk in (1, 3, 8):
        layer = layers.Conv2D(6, 8, 5, 2, np.random.default_rng(6))
        layer.INPUT_GRAD_CHUNK = input_grad_chunk
        layer.forward(x, training=True)
        results.append((layer.backward(dy), layer.grads["W"].copy(), layer.grads["b"].copy()))
    for dx, dw, db in results[1:]:
        np.testing.assert_array_equal(dx, results[0][0])
        np.testing.assert_array_equal(dw, results[0][1])
        np.testing.assert_array_equal(db, results[0][2])
    np.testing.assert_array_equal(results[0][2], dy.sum(axis=(0, 1, 2)))


def test_first_layer_patches_give_the_same_weight_gradient_as_im2col(monkeypatch):
    """The one-channel layer builds its patches transposed (ops.single_channel_patches);
    forward and weight gradient must equal the general im2col path's to the bit."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 28, 28, 1)).astype(np.float32)
    dy = rng.standard_normal((9, 28, 28, 32)).astype(np.float32)
    layer = layers.Conv2D(1, 32, 5, 2, np.random.default_rng(8), needs_input_grad=False)
    assert layer._patches() is ops.single_channel_patches
    y = layer.forward(x, training=True)
    layer.backward(dy)
    fast = y, layer.grads["W"].copy()
    monkeypatch.setattr(layer, "_patches", lambda: ops.im2col)
    y = layer.forward(x, training=True)
    layer.backward(dy)
    np.testing.assert_array_equal(fast[0], y)
    np.testing.assert_array_equal(fast[1], layer.grads["W"])


@needs_two_workers
def test_in_background_overlaps_with_mapped_chunks():
    """The background task and the chunks run on the pool at the same time: the
    task waits for a chunk to start, which would never happen if they ran in turn."""
    import threading

    chunk_started = threading.Event()

    def background():
        return chunk_started.wait(timeout=10)

    result = parallel.in_background(background)
    parallel.map_chunks(lambda chunk: chunk_started.set(), [(0, 1), (1, 2)])
    assert result() is True


def test_map_slices_covers_the_range_once_and_stays_inline_when_small(split_calls):
    seen = []
    parallel.map_slices(seen.append, 10, parallel.SPLIT_ELEMENTS_MIN - 1)
    assert seen == [(0, 10)] and split_calls == []
    seen.clear()
    parallel.map_slices(seen.append, 10, parallel.SPLIT_ELEMENTS_MIN)
    covered = sorted(i for s, e in seen for i in range(s, e))
    assert covered == list(range(10))
    assert len(seen) == min(parallel.WORKERS, 10)


def test_adam_refuses_a_parameter_it_could_not_update_in_place():
    """A non-contiguous array's flat view would be a copy: the update would be lost."""
    weights = np.zeros((4, 6), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        Adam([(weights, np.zeros_like(weights), True)])
