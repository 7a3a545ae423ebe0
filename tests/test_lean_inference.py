"""The batch-1 fast paths of the forward pass give the same numbers as the plain
NumPy formulations they replaced (issue 11: answers must not move): to the bit,
except the dense layer after a ReLU, which leaves out its zero terms and so may
round differently (a few float32 ulps of the logits)."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from model import ops
from model.architecture import walk
from model.inference import _layer_functions, load_model


def reference_im2col(xp, k, out_h, out_w):
    n, _, _, c = xp.shape
    windows = sliding_window_view(xp, (k, k), axis=(1, 2))
    return np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3)).reshape(n * out_h * out_w, k * k * c)


def reference_maxpool(x, size):
    n, h, w, c = x.shape
    return x.reshape(n, h // size, size, w // size, size, c).max(axis=(2, 4))


@pytest.mark.parametrize("shape,k", [((1, 32, 32, 1), 5), ((1, 18, 18, 32), 5), ((3, 9, 11, 4), 3),
                                     ((2, 5, 5, 2), 5), ((1, 4, 4, 3), 1)])
def test_im2col_equals_the_sliding_window_copy(shape, k):
    xp = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    out_h, out_w = shape[1] - k + 1, shape[2] - k + 1
    np.testing.assert_array_equal(ops.im2col(xp, k, out_h, out_w), reference_im2col(xp, k, out_h, out_w))


def test_im2col_of_a_batch_slice_reads_only_that_slice():
    xp = np.random.default_rng(0).standard_normal((5, 8, 8, 2)).astype(np.float32)
    np.testing.assert_array_equal(ops.im2col(xp[2:4], 3, 6, 6), reference_im2col(xp[2:4], 3, 6, 6))


def test_im2col_refuses_an_output_size_the_window_cannot_give():
    """The strided view trusts the sizes; a wrong one must not read past the array."""
    xp = np.zeros((1, 10, 10, 1), np.float32)
    with pytest.raises(ValueError, match="gives 6x6"):
        ops.im2col(xp, 5, 10, 10)


@pytest.mark.parametrize("shape,k", [((1, 32, 32, 1), 5), ((3, 9, 11, 1), 3), ((2, 5, 5, 1), 5),
                                     ((9, 6, 7, 1), 1)])
def test_single_channel_patches_are_the_im2col_matrix(shape, k):
    xp = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    out_h, out_w = shape[1] - k + 1, shape[2] - k + 1
    np.testing.assert_array_equal(ops.single_channel_patches(xp, k, out_h, out_w),
                                  reference_im2col(xp, k, out_h, out_w))


def test_single_channel_patches_refuse_channels_and_sizes_they_cannot_give():
    with pytest.raises(ValueError, match="2 channels"):
        ops.single_channel_patches(np.zeros((1, 8, 8, 2), np.float32), 3, 6, 6)
    with pytest.raises(ValueError, match="5x5 window over 10x10"):
        ops.single_channel_patches(np.zeros((1, 10, 10, 1), np.float32), 5, 10, 10)
    with pytest.raises(ValueError, match="for 6x10"):  # one side right is not enough
        ops.single_channel_patches(np.zeros((1, 10, 10, 1), np.float32), 5, 6, 10)


@pytest.mark.parametrize("channels", [1, 3])
def test_conv2d_of_a_wide_image_is_the_sum_over_its_windows(channels):
    """Height and width differ, so neither patch builder can swap them unnoticed."""
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((2, 7, 10, channels)).astype(np.float32)
    weight = rng.standard_normal((3, 3, channels, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.empty((2, 7, 10, 4), np.float64)
    for i in range(7):
        for j in range(10):
            want[:, i, j] = np.einsum("nabc,abcf->nf", xp[:, i:i + 3, j:j + 3].astype(np.float64), weight) + bias
    np.testing.assert_allclose(ops.conv2d(x, weight, bias, 1), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 2, 8, 11])
def test_a_first_layer_convolution_is_the_same_to_the_bit_through_either_patch_matrix(batch):
    """conv2d takes one-channel input through single_channel_patches: the GEMM gets the
    patch matrix transposed, and must still give the im2col path's exact floats."""
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 28, 28, 1)).astype(np.float32)
    weight = load_model()._params["0.W"]
    bias = rng.standard_normal(weight.shape[-1]).astype(np.float32)
    xp = ops.pad_hw(x, 2)
    want = np.empty((batch, 28, 28, weight.shape[-1]), np.float32)
    for s, e in ops.batch_chunks(batch):
        ops.conv_chunk(xp[s:e], weight, bias, want[s:e])  # im2col, as the trainer runs it
    np.testing.assert_array_equal(ops.conv2d(x, weight, bias, 2), want)


@pytest.mark.parametrize("shape,size", [((1, 28, 28, 32), 2), ((4, 14, 14, 64), 2), ((2, 9, 6, 3), 3),
                                        ((1, 4, 4, 2), 1), ((1, 8, 8, 1), 4)])
def test_maxpool_equals_the_reduction_over_windows(shape, size):
    x = np.random.default_rng(size).standard_normal(shape).astype(np.float32)
    got = ops.maxpool(x, size)
    np.testing.assert_array_equal(got, reference_maxpool(x, size))
    assert not np.shares_memory(got, x)  # the inference pass applies ReLU in place on it


def reference_logits(model, images):
    """The forward pass as the inference module walked it before: layer by layer
    from the architecture, parameters looked up by name."""
    x = model.normalize(images)
    for step in model._steps:
        p = model._params
        if step.kind == "conv2d":
            x = ops.conv2d(x, p[f"{step.index}.W"], p[f"{step.index}.b"], int(step.spec.get("padding", 0)))
        elif step.kind == "maxpool2d":
            x = reference_maxpool(x, int(step.spec["size"]))
        elif step.kind == "relu":
            x = np.maximum(x, 0)
        elif step.kind == "sigmoid":
            x = ops.sigmoid(x)
        elif step.kind == "tanh":
            x = np.tanh(x)
        elif step.kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif step.kind == "dense":
            x = x @ p[f"{step.index}.W"] + p[f"{step.index}.b"]
    return x


@pytest.mark.parametrize("batch", [1, 3, 9])
def test_shipped_model_logits_equal_the_layer_by_layer_walk(batch):
    model = load_model()
    images = (np.random.default_rng(batch).random((batch, 28, 28)) * 255).astype(np.uint8)
    images[0, :4] = 0
    got, want = model.logits(images), reference_logits(model, images)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def test_a_model_without_relu_keeps_its_logits_to_the_bit():
    model = load_model("model/weights/zoo/sigmoid-30.npz")
    images = (np.random.default_rng(4).random((5, 28, 28)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(model.logits(images), reference_logits(model, images))


def test_only_a_dense_layer_fed_by_a_relu_skips_zero_inputs():
    architecture = [{"type": "flatten"}, {"type": "dense", "units": 6}, {"type": "relu"},
                    {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 5}, {"type": "sigmoid"},
                    {"type": "dense", "units": 4}, {"type": "relu"}, {"type": "flatten"},
                    {"type": "dense", "units": 3}]
    steps = walk(architecture, (4, 4, 1))
    rng = np.random.default_rng(0)
    params = {name: rng.standard_normal(shape).astype(np.float32)
              for step in steps for name, shape in step.params.items()}
    dense_kinds = [layer.func for layer in _layer_functions(steps, params)
                   if getattr(layer, "func", None) in (ops.dense, ops.dense_skipping_zeros)]
    assert dense_kinds == [ops.dense, ops.dense_skipping_zeros, ops.dense, ops.dense_skipping_zeros]


def relu_output(rows, width, nonzero_share, seed):
    """Rows with about `nonzero_share` of positive values and exact zeros elsewhere."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, width)).astype(np.float32)
    x[rng.random((rows, width)) >= nonzero_share] = 0.0
    return x


@pytest.mark.parametrize("share", [0.0, 0.1, 0.45, 0.7, 1.0])
def test_dense_skipping_zeros_is_the_dense_layer(share):
    x = relu_output(4, 300, share, seed=int(share * 10))
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((300, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    got = ops.dense_skipping_zeros(x, weight, bias)
    assert got.dtype == np.float32 and got.shape == (4, 7)
    np.testing.assert_allclose(got, ops.dense(x, weight, bias), rtol=1e-5, atol=1e-5)


def test_dense_skipping_zeros_never_reads_the_weights_of_zero_inputs():
    x = relu_output(3, 500, 0.1, seed=2)
    weight = np.random.default_rng(3).standard_normal((500, 8)).astype(np.float32)
    bias = np.zeros(8, np.float32)
    x[2] = 0.0  # a row with no ink at all: only the bias
    poisoned = weight.copy()
    poisoned[~x.any(axis=0)] = np.nan  # 0 * nan would be nan
    got = ops.dense_skipping_zeros(x, poisoned, bias + 1)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, x @ weight + 1, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[2], bias + 1)


def test_dense_skipping_zeros_answers_each_image_as_if_alone():
    x = np.concatenate([relu_output(3, 400, 0.1, seed=4), relu_output(2, 400, 0.9, seed=5)])
    weight = np.random.default_rng(6).standard_normal((400, 9)).astype(np.float32)
    bias = np.random.default_rng(7).standard_normal(9).astype(np.float32)
    together = ops.dense_skipping_zeros(x, weight, bias)
    for i in range(len(x)):
        np.testing.assert_array_equal(together[i], ops.dense_skipping_zeros(x[i:i + 1], weight, bias)[0])
    # a mostly nonzero row is the plain product of that one row
    np.testing.assert_array_equal(together[4], x[4] @ weight + bias)


def test_logits_leave_the_callers_images_untouched():
    model = load_model()
    images = (np.random.default_rng(5).random((2, 28, 28)) * 255).astype(np.uint8)
    before = images.copy()
    model.logits(images)
    np.testing.assert_array_equal(images, before)
