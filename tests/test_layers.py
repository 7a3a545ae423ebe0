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


def test_he_initialisation_scales_weights_by_fan_in():
    """Weights drawn with std sqrt(2 / fan_in) (He et al. 2015), biases zero, float32.

    Measured on 600,000 and 12,800 draws: the sample std is within 0.5% of the target,
    so 3% catches a wrong fan-in or factor (sqrt(3/2) is 22% off)."""
    rng = np.random.default_rng(11)
    dense = layers.Dense(2000, 300, rng)
    conv = layers.Conv2D(8, 64, 5, 2, rng)
    for layer, fan_in in [(dense, 2000), (conv, 5 * 5 * 8)]:
        weight, bias = layer.params["W"], layer.params["b"]
        assert weight.dtype == np.float32 and bias.dtype == np.float32
        assert float(weight.std()) == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.03)
        assert abs(float(weight.mean())) < 0.05 * np.sqrt(2.0 / fan_in)
        np.testing.assert_array_equal(bias, 0)
        assert set(layer.grads) == {"W", "b"}
        for key in layer.params:
            assert layer.grads[key].shape == layer.params[key].shape
            assert layer.grads[key].dtype == np.float32
    assert dense.params["W"].shape == (2000, 300) and conv.params["W"].shape == (5, 5, 8, 64)


@pytest.mark.parametrize("make,shape", [
    (lambda rng: layers.Conv2D(3, 4, 3, 1, rng), (5, 6, 6, 3)),
    (lambda rng: layers.Conv2D(3, 4, 3, 0, rng), (3, 6, 6, 3)),
    (lambda rng: layers.MaxPool2D(2), (5, 6, 6, 3)),
    (lambda rng: layers.Dense(12, 5, rng), (4, 12)),
    (lambda rng: layers.ReLU(), (4, 12)),
    (lambda rng: layers.Sigmoid(), (4, 12)),
    (lambda rng: layers.Tanh(), (4, 12)),
    (lambda rng: layers.Flatten(), (4, 3, 2, 2)),
    (lambda rng: layers.Dropout(0.3, rng), (4, 12)),
], ids=["conv-same", "conv-valid", "maxpool", "dense", "relu", "sigmoid", "tanh", "flatten", "dropout"])
def test_every_layer_stays_float32_forward_and_backward(make, shape):
    """The trainer works in float32 (half the memory traffic of float64): no layer may
    quietly widen its output or its input gradient."""
    rng = np.random.default_rng(2)
    layer = make(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    for key in layer.grads:
        assert layer.grads[key].dtype == np.float32


def test_dropout_called_without_the_flag_is_inference():
    """Forgetting `training=` must never drop units from a prediction."""
    x = np.ones((20, 50), np.float32)
    layer = layers.Dropout(0.5, np.random.default_rng(4))
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_relu_gradient_is_zero_where_the_unit_is_off_including_zero():
    """The subgradient at exactly 0 is 0, as in PyTorch and TensorFlow: a unit
    sitting at 0 (a zero-padded border, an all-zero input) passes no gradient."""
    relu = layers.ReLU()
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(relu.forward(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.full_like(x, 5.0)), [[0.0, 0.0, 5.0]])


def test_maxpool_remembers_its_argmax_in_a_byte_per_input():
    """Pooling keeps a boolean mask (1 byte per input value) for its backward pass;
    a float mask would be 8 bytes, twice the float32 input. Peak memory while pooling
    a 3.2 MB batch: output 0.8 MB + mask 0.8 MB, measured 1.6 MB; a float64 mask adds 6.4 MB."""
    import tracemalloc

    x = np.random.default_rng(0).standard_normal((32, 28, 28, 32)).astype(np.float32)
    pool = layers.MaxPool2D(2)
    tracemalloc.start()
    try:
        pool.forward(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * x.nbytes, f"pooling {x.nbytes} bytes peaked at {peak}"


def test_conv_gradients_for_a_batch_larger_than_the_image():
    """The backward pass splits the batch, not an image axis: with 9 images of 4x4
    every image's gradient must arrive (the trainer's batches are 128 images of 28x28)."""
    from tests.test_gradients import check_layer, to_float64

    rng = np.random.default_rng(8)
    layer = to_float64(layers.Conv2D(2, 3, 3, 1, rng))
    layer.CHUNK = 2
    check_layer(layer, rng.standard_normal((9, 4, 4, 2)), rng, n_samples=60)
