"""Optimizer steps against the textbook formulas, computed by hand in float64.

Adam's bias correction and the decoupled weight decay (weights only) change
every step of training, yet leave a smoke test's loss curve looking fine; only
numbers written out from the definitions tell them apart.
"""
import math

import numpy as np
import pytest

from model.network import Network
from model.optimizers import SGD, Adam, constant, make_optimizer, warmup_cosine

LR, WD = 0.1, 0.05
B1, B2, EPS = 0.9, 0.999, 1e-8
GRADS = [np.array([0.5, -0.1, 0.0]), np.array([-0.2, 0.3, 0.0])]  # two steps
START = np.array([1.0, -2.0, 3.0])


def adam_by_hand(p, grads, decay):
    """Adam (Kingma & Ba, algorithm 1) with AdamW's decoupled decay (Loshchilov & Hutter)."""
    p, m, v = p.astype(np.float64), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        m_hat, v_hat = m / (1 - B1 ** t), v / (1 - B2 ** t)
        if decay:
            p = p * (1 - LR * WD)
        p = p - LR * m_hat / (np.sqrt(v_hat) + EPS)
    return p


def run(optimizer_class, decay, **options):
    p = START.astype(np.float32)
    g = np.zeros(3, np.float32)
    optimizer = optimizer_class([(p, g, decay)], lr=LR, weight_decay=WD, **options)
    for grad in GRADS:
        g[...] = grad
        optimizer.step()
    return p


@pytest.mark.parametrize("decay", [True, False], ids=["weight", "bias"])
def test_adam_two_steps_match_the_definition(decay):
    np.testing.assert_allclose(run(Adam, decay), adam_by_hand(START, GRADS, decay), rtol=1e-6, atol=1e-6)


def test_adam_first_step_moves_each_parameter_by_lr():
    """With bias correction the first step is lr * sign(g): the property the correction exists for."""
    p = START.astype(np.float32)
    Adam([(p, np.array([0.5, -0.05, 0.0], np.float32), False)], lr=LR).step()
    np.testing.assert_allclose(p - START, [-LR, LR, 0.0], rtol=1e-5, atol=1e-6)


def test_weight_decay_shrinks_weights_only_and_by_lr_times_decay():
    """A zero gradient isolates the decay: weights shrink by (1 - lr*wd) per step, biases stay put."""
    weight, bias = START.astype(np.float32), START.astype(np.float32)
    zero = np.zeros(3, np.float32)
    optimizer = Adam([(weight, zero, True), (bias, zero.copy(), False)], lr=LR, weight_decay=WD)
    optimizer.step()
    optimizer.step()
    np.testing.assert_allclose(weight, START * (1 - LR * WD) ** 2, rtol=1e-6)
    np.testing.assert_array_equal(bias, START.astype(np.float32))


def sgd_by_hand(p, grads, decay, momentum=0.9, nesterov=True):
    p, velocity = p.astype(np.float64), np.zeros(3)
    for g in grads:
        velocity = momentum * velocity + g
        update = g + momentum * velocity if nesterov else velocity
        if decay:
            p = p * (1 - LR * WD)
        p = p - LR * update
    return p


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("decay", [True, False], ids=["weight", "bias"])
def test_sgd_two_steps_match_the_definition(decay, nesterov):
    np.testing.assert_allclose(run(SGD, decay, momentum=0.9, nesterov=nesterov),
                               sgd_by_hand(START, GRADS, decay, nesterov=nesterov), rtol=1e-6)


def test_network_marks_weights_for_decay_and_biases_not():
    net = Network([{"type": "flatten"}, {"type": "dense", "units": 3}], input_shape=(2, 2, 1))
    (w, _, w_decays), (b, _, b_decays) = net.parameters()
    assert w.shape == (4, 3) and w_decays is True
    assert b.shape == (3,) and b_decays is False


def test_make_optimizer_passes_rate_and_decay_on():
    params = [(np.ones(2, np.float32), np.zeros(2, np.float32), True)]
    for name, kind in (("adam", Adam), ("sgd", SGD)):
        optimizer = make_optimizer(name, params, 0.25, 0.125)
        assert isinstance(optimizer, kind)
        assert (optimizer.lr, optimizer.weight_decay) == (0.25, 0.125)
    with pytest.raises(ValueError, match="adam or sgd"):
        make_optimizer("rmsprop", params, 0.1, 0.0)


def test_make_optimizer_passes_sgd_momentum_on_and_defaults_to_0_9():
    """The zoo's classic runs ask for momentum 0 (plain SGD, as the tutorials); the CNN's SGD uses 0.9."""
    params = [(np.ones(2, np.float32), np.zeros(2, np.float32), True)]
    assert make_optimizer("sgd", params, 0.1, 0.0, momentum=0.0).momentum == 0.0
    assert make_optimizer("sgd", params, 0.1, 0.0).momentum == 0.9


def test_constant_schedule_ignores_warmup_and_progress():
    assert [constant(step, 100, 0.5) for step in (0, 1, 99)] == [0.5, 0.5, 0.5]
    assert constant(0, 100, 0.5, warmup_steps=10) == 0.5


def test_warmup_cosine_schedule_points():
    base, warm, total = 1.0, 10, 110
    assert warmup_cosine(0, total, base, warm) == pytest.approx(0.1)
    assert warmup_cosine(9, total, base, warm) == pytest.approx(1.0)
    assert warmup_cosine(10, total, base, warm) == pytest.approx(1.0)
    floor = base * 0.01
    assert warmup_cosine(60, total, base, warm) == pytest.approx(floor + 0.5 * (base - floor))
    assert warmup_cosine(110, total, base, warm) == pytest.approx(floor)
    assert warmup_cosine(500, total, base, warm) == pytest.approx(floor)  # clamped, not rising again
    assert warmup_cosine(35, total, base, warm, final_fraction=0.2) == pytest.approx(
        0.2 + 0.5 * 0.8 * (1 + math.cos(math.pi * 0.25)))
    assert warmup_cosine(0, 100, 0.5) == pytest.approx(0.5)  # no warm-up: starts at the base rate


def test_adam_defaults_are_the_published_ones():
    """lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay: Kingma & Ba's defaults."""
    p = START.astype(np.float32)
    g = np.array(GRADS[0], np.float32)
    Adam([(p, g, True)]).step()
    np.testing.assert_allclose(p, START - 1e-3 * np.sign(GRADS[0]), rtol=1e-6, atol=1e-9)


def test_sgd_defaults_are_nesterov_momentum_without_decay():
    p = START.astype(np.float32)
    g = np.zeros(3, np.float32)
    optimizer = SGD([(p, g, True)])
    for grad in GRADS:
        g[...] = grad
        optimizer.step()
    expected, velocity = START.copy(), np.zeros(3)
    for grad in GRADS:  # lr 0.05, momentum 0.9, Nesterov, no decay
        velocity = 0.9 * velocity + grad
        expected = expected - 0.05 * (grad + 0.9 * velocity)
    np.testing.assert_allclose(p, expected, rtol=1e-6)


def test_adam_gradient_far_below_eps_takes_a_small_step_downhill():
    """eps keeps a vanishing gradient from taking a full lr-sized step, and never flips its sign."""
    p = np.zeros(1, np.float32)
    Adam([(p, np.array([1e-10], np.float32), False)], lr=LR).step()
    assert -0.01 * LR < p[0] < 0


def test_warmup_cosine_without_warmup_starts_decaying_at_step_zero():
    floor = 0.01
    assert warmup_cosine(50, 100, 1.0) == pytest.approx(floor + 0.5 * (1 - floor))
    assert warmup_cosine(1, 1, 1.0) == pytest.approx(floor)  # a one-step schedule ends at the floor
