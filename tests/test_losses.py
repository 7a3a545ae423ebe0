"""The loss keeps the caller's float precision (float32 in training) and takes integer logits."""
import numpy as np
import pytest

from model.losses import softmax_cross_entropy


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
