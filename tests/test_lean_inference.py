"""The batch-1 fast paths of the forward pass give the same numbers, to the bit,
as the plain NumPy formulations they replaced (issue 11: answers must not move)."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from model import ops
from model.inference import load_model


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
    np.testing.assert_array_equal(model.logits(images), reference_logits(model, images))


def test_logits_leave_the_callers_images_untouched():
    model = load_model()
    images = (np.random.default_rng(5).random((2, 28, 28)) * 255).astype(np.uint8)
    before = images.copy()
    model.logits(images)
    np.testing.assert_array_equal(images, before)
