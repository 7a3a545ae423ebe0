"""Numerical gradient checks: every layer and the loss against central differences.

Checks run in float64 (the layers are dtype-agnostic) so the finite differences
measure the backward pass, not float32 rounding.
"""
import numpy as np
import pytest

from model import layers
from model.losses import sigmoid_quadratic, softmax_cross_entropy
from model.network import Network

EPS = 1e-6


def to_float64(layer):
    layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    return layer


def numeric_grad(f, array, indices):
    """Central differences of scalar f() w.r.t. array at the given flat indices."""
    flat = array.reshape(-1)
    grads = []
    for i in indices:
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        grads.append((up - down) / (2 * EPS))
    return np.array(grads)


def check_layer(layer, x, rng, n_samples=40, check_input=True):
    """Loss = sum(forward(x) * r) has d loss / d output = r; compare backward with numerics."""
    out = layer.forward(x, training=True)
    r = rng.standard_normal(out.shape)
    dx = layer.backward(r.copy())

    def loss():
        return float(np.sum(layer.forward(x, training=True) * r))

    arrays = [("x", x, dx)] if check_input else []
    arrays += [(k, layer.params[k], layer.grads[k]) for k in layer.params]
    for name, array, analytic in arrays:
        idx = rng.choice(array.size, size=min(n_samples, array.size), replace=False)
        numeric = numeric_grad(loss, array, idx)
        np.testing.assert_allclose(analytic.reshape(-1)[idx], numeric, rtol=1e-5, atol=1e-7,
                                   err_msg=f"{type(layer).__name__} gradient of {name}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_dense_gradients(rng):
    layer = to_float64(layers.Dense(7, 5, rng))
    check_layer(layer, rng.standard_normal((4, 7)), rng)


@pytest.mark.parametrize("padding,kernel", [(0, 3), (1, 3), (2, 5)])
def test_conv2d_gradients(rng, padding, kernel):
    layer = to_float64(layers.Conv2D(3, 4, kernel, padding, rng))
    layer.CHUNK = 2  # several chunks, so the chunked reduction is exercised too
    check_layer(layer, rng.standard_normal((5, 8, 8, 3)), rng)


def test_conv2d_without_input_gradient_still_gets_weight_gradients(rng):
    layer = to_float64(layers.Conv2D(1, 3, 3, 1, rng, needs_input_grad=False))
    x = rng.standard_normal((2, 6, 6, 1))
    assert layer.backward(np.ones_like(layer.forward(x))) is None
    check_layer(layer, x, rng, check_input=False)


def test_maxpool_gradients(rng):
    # Continuous random input: no ties, so the max is differentiable everywhere checked.
    check_layer(layers.MaxPool2D(2), rng.standard_normal((3, 6, 6, 2)), rng)


def test_relu_gradients(rng):
    x = rng.standard_normal((4, 10))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink where no derivative exists
    check_layer(layers.ReLU(), x, rng)


@pytest.mark.parametrize("layer_class", [layers.Sigmoid, layers.Tanh])
def test_squashing_layer_gradients(rng, layer_class):
    # Inputs spread over the curved part and both tails, where the slope is tiny.
    check_layer(layer_class(), rng.standard_normal((4, 10)) * 4, rng)


@pytest.mark.parametrize("layer_class,reference", [(layers.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
                                                   (layers.Tanh, np.tanh)])
def test_squashing_layers_match_their_definition_without_overflow(layer_class, reference):
    x = np.array([[-200.0, -20.0, -1.0, 0.0, 0.5, 20.0, 200.0]], np.float32)
    with np.errstate(all="raise"):  # the float32 tails must not overflow
        y = layer_class().forward(x)
    assert y.dtype == np.float32
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(y, reference(x.astype(np.float64)), atol=1e-7)


def test_flatten_gradients(rng):
    check_layer(layers.Flatten(), rng.standard_normal((2, 3, 3, 2)), rng)


def test_dropout_gradients_use_the_same_mask(rng):
    layer = layers.Dropout(0.5, np.random.default_rng(7))
    x = rng.standard_normal((6, 10))
    out = layer.forward(x, training=True)
    assert np.any(out == 0) and np.any(out != 0)
    dx = layer.backward(np.ones_like(out))
    np.testing.assert_allclose(dx, layer.mask)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_conv2d_matches_direct_convolution(rng):
    """The im2col path against a plain loop over output positions."""
    layer = to_float64(layers.Conv2D(2, 3, 3, 1, rng))
    x = rng.standard_normal((2, 5, 5, 2))
    y = layer.forward(x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    w, b = layer.params["W"], layer.params["b"]
    expected = np.zeros_like(y)
    for i in range(5):
        for j in range(5):
            patch = xp[:, i:i + 3, j:j + 3, :]
            expected[:, i, j, :] = np.einsum("nhwc,hwcf->nf", patch, w) + b
    np.testing.assert_allclose(y, expected, rtol=1e-10)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient(rng, smoothing):
    logits = rng.standard_normal((5, 10))
    labels = rng.integers(0, 10, size=5)
    _, analytic = softmax_cross_entropy(logits, labels, smoothing)

    def loss():
        return softmax_cross_entropy(logits, labels, smoothing)[0]

    idx = np.arange(logits.size)
    numeric = numeric_grad(loss, logits, idx)
    np.testing.assert_allclose(analytic.reshape(-1), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_sigmoid_quadratic_gradient(rng, smoothing):
    logits = rng.standard_normal((5, 10)) * 3
    labels = rng.integers(0, 10, size=5)
    _, analytic = sigmoid_quadratic(logits, labels, smoothing)

    def loss():
        return sigmoid_quadratic(logits, labels, smoothing)[0]

    numeric = numeric_grad(loss, logits, np.arange(logits.size))
    np.testing.assert_allclose(analytic.reshape(-1), numeric, rtol=1e-5, atol=1e-8)


def test_sigmoid_quadratic_value_matches_nielsen():
    """C = 1/(2n) sum ||y - a||^2 with a = sigmoid(z) (Nielsen, eq. 6)."""
    logits = np.array([[0.0, 2.0, -1.0], [1.0, -3.0, 0.5]], np.float32)
    labels = np.array([1, 2])
    a = 1 / (1 + np.exp(-logits.astype(np.float64)))
    y = np.eye(3)[labels]
    assert sigmoid_quadratic(logits, labels)[0] == pytest.approx(np.sum((y - a) ** 2) / 4, rel=1e-5)


def test_softmax_cross_entropy_value_matches_definition(rng):
    logits = rng.standard_normal((3, 10)).astype(np.float32)
    labels = np.array([1, 4, 9])
    loss, _ = softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(3), labels])), rel=1e-5)


def test_whole_network_gradient(rng):
    """End to end through conv, pool, relu, flatten, dense and the loss."""
    arch = [{"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1}, {"type": "maxpool2d", "size": 2},
            {"type": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 10}]
    check_network_gradient(arch, rng)


def test_whole_sigmoid_and_tanh_network_gradient(rng):
    """The classic tutorials' shape: dense layers squashed by sigmoid and tanh."""
    arch = [{"type": "flatten"}, {"type": "dense", "units": 8}, {"type": "sigmoid"},
            {"type": "dense", "units": 6}, {"type": "tanh"}, {"type": "dense", "units": 10}]
    check_network_gradient(arch, rng)


def check_network_gradient(arch, rng):
    net = Network(arch, input_shape=(6, 6, 1), seed=3)
    for layer in net.layers:
        to_float64(layer)
    x = rng.standard_normal((3, 6, 6, 1))
    labels = np.array([0, 3, 7])

    def loss():
        logits = net.forward(x, training=True)
        return float(-np.mean(np.log(np.exp(logits - logits.max(1, keepdims=True))[np.arange(3), labels]
                                     / np.exp(logits - logits.max(1, keepdims=True)).sum(1))))

    logits = net.forward(x, training=True)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(3), labels] -= 1
    net.backward(p / 3)
    for layer in net.layers:
        for k in layer.params:
            idx = rng.choice(layer.params[k].size, size=min(20, layer.params[k].size), replace=False)
            numeric = numeric_grad(loss, layer.params[k], idx)
            np.testing.assert_allclose(layer.grads[k].reshape(-1)[idx], numeric, rtol=1e-4, atol=1e-7)
