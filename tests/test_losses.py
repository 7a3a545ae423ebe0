"""The losses keep the caller's float precision (float32 in training), take integer logits, and
Nielsen's quadratic cost matches its definition, label smoothing included."""
import numpy as np
import pytest

from model.losses import sigmoid_quadratic, softmax_cross_entropy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_gradient_keeps_the_logits_float_type(dtype):
    logits = np.random.default_rng(0).standard_normal((4, 10)).astype(dtype)
    before = logits.copy()
    _, grad = softmax_cross_entropy(logits, np.array([0, 1, 2, 3]), label_smoothing=0.1)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(logits, before)  # the caller's logits are not overwritten


def test_integer_logits_are_computed_in_float32():
    logits = np.array([[3, 1, 0], [0, 0, 5]])
    loss, grad = softmax_cross_entropy(logits, np.array([0, 2]))
    expected_loss, expected_grad = softmax_cross_entropy(logits.astype(np.float32), np.array([0, 2]))
    assert grad.dtype == np.float32
    assert loss == pytest.approx(expected_loss)
    np.testing.assert_allclose(grad, expected_grad)
    assert abs(grad).sum() > 0.01


def quadratic_by_hand(logits, labels, smoothing):
    """C = 1/2n sum (a - y)^2 with a = sigmoid(z); dC/dz = (a - y) a (1 - a) / n, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    n, k = z.shape
    a = 1.0 / (1.0 + np.exp(-z))
    y = np.full((n, k), smoothing / k)
    y[np.arange(n), labels] = 1.0 - smoothing + smoothing / k
    return 0.5 * np.sum((a - y) ** 2) / n, (a - y) * a * (1 - a) / n


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_quadratic_cost_and_gradient_match_the_definition(smoothing):
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]], dtype=np.float32)
    labels = np.array([0, 2])
    loss, grad = sigmoid_quadratic(logits, labels, smoothing)
    expected_loss, expected_grad = quadratic_by_hand(logits, labels, smoothing)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quadratic_gradient_keeps_the_logits_float_type(dtype):
    logits = np.random.default_rng(1).standard_normal((3, 10)).astype(dtype)
    before = logits.copy()
    _, grad = sigmoid_quadratic(logits, np.array([1, 2, 3]), 0.1)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(logits, before)


def test_quadratic_of_integer_logits_is_computed_in_float32():
    logits = np.array([[3, 1, 0], [0, 0, 5]])
    loss, grad = sigmoid_quadratic(logits, np.array([0, 2]))
    expected_loss, expected_grad = quadratic_by_hand(logits, np.array([0, 2]), 0.0)
    assert grad.dtype == np.float32
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
