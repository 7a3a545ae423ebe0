"""Layer behaviour that gradient checks cannot see: dropout's expectation,
per-instance parameters, and chunked convolution agreeing with the plain one."""
import numpy as np
import pytest

from model import layers, ops


def test_dropout_keeps_the_expectation_at_training_time():
    """Inverted dropout: zeros at rate `rate`, survivors scaled by 1/keep, so the mean is unchanged.

    Measured from the output alone (not the layer's own mask): 400,000 ones
    give a mean within 0.01 of 1 (the standard error is 0.0013 at rate 0.4)."""
    rate = 0.4
    layer = layers.Dropout(rate, np.random.default_rng(3))
    x = np.ones((400, 1000), np.float32)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    assert abs(float(out.mean()) - 1.0) < 0.01
    dropped = out == 0
    assert abs(float(dropped.mean()) - rate) < 0.01
    np.testing.assert_allclose(out[~dropped], 1.0 / (1.0 - rate), rtol=1e-6)


def test_dropout_gradient_is_the_forward_scaling():
    """d sum(out) / dx = out / x elementwise: backward must scale exactly as forward did."""
    rng = np.random.default_rng(5)
    layer = layers.Dropout(0.25, np.random.default_rng(9))
    x = rng.uniform(0.5, 2.0, (50, 40)).astype(np.float32)
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(layer.backward(np.ones_like(out)), out / x, rtol=1e-6)


@pytest.mark.parametrize("training,rate", [(False, 0.5), (True, 0.0)])
def test_dropout_is_the_identity_at_inference_and_at_rate_zero(training, rate):
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    layer = layers.Dropout(rate, np.random.default_rng(1))
    np.testing.assert_array_equal(layer.forward(x, training=training), x)
    dy = np.full_like(x, 3.0)
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_layers_without_parameters_do_not_share_a_dict():
    relu, flatten, pool = layers.ReLU(), layers.Flatten(), layers.MaxPool2D(2)
    assert relu.params == {} and relu.grads == {}
    relu.params["W"] = np.zeros(1)
    relu.grads["W"] = np.zeros(1)
    for other in (flatten, pool, layers.ReLU(), layers.Dropout(0.1, np.random.default_rng(0))):
        assert other.params == {} and other.grads == {}


@pytest.mark.parametrize("n", [1, 7, 8, 11, 17])
def test_chunked_training_conv_equals_inference_conv(n):
    """The trainer's Conv2D and the inference module's ops.conv2d chunk the batch the
    same way and must give the same numbers, for batches that do not fill the last chunk."""
    rng = np.random.default_rng(n)
    layer = layers.Conv2D(3, 4, 5, 2, rng)
    x = rng.standard_normal((n, 9, 9, 3)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (n, 9, 9, 4)
    np.testing.assert_array_equal(y, ops.conv2d(x, layer.params["W"], layer.params["b"], 2))


def test_batch_chunks_cover_the_batch_in_order():
    assert ops.batch_chunks(17, 8) == [(0, 8), (8, 16), (16, 17)]
    assert ops.batch_chunks(16, 8) == [(0, 8), (8, 16)]
    assert ops.batch_chunks(3) == [(0, 3)]
    assert ops.batch_chunks(0) == []


@pytest.mark.parametrize("size,kernel,padding,expected", [(28, 5, 2, 28), (28, 5, 0, 24), (7, 3, 1, 7), (5, 5, 0, 1)])
def test_conv_output_size(size, kernel, padding, expected):
    assert ops.conv_output_size(size, kernel, padding) == expected
