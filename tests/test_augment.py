"""Augmentation: identity when off, each family does what it says, reproducible by seed."""
import numpy as np
import pytest

from model.augment import AugmentConfig, Augmenter
from model.optimizers import warmup_cosine


def bar_image():
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 6:22, 13:15] = 1.0  # a vertical stroke, 2 px wide
    return img


def center_of_mass(img):
    rows, cols = np.mgrid[0:28, 0:28]
    total = img.sum()
    return (rows * img).sum() / total, (cols * img).sum() / total


def test_everything_off_is_the_identity():
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(Augmenter(AugmentConfig.none())(x, np.random.default_rng(1)), x, atol=1e-5)


def test_output_shape_dtype_and_range():
    x = np.random.default_rng(0).random((16, 28, 28)).astype(np.float32)
    out = Augmenter()(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_same_seed_same_batch():
    x = np.random.default_rng(0).random((8, 28, 28)).astype(np.float32)
    a = Augmenter()(x, np.random.default_rng(5))
    b = Augmenter()(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_shift_moves_the_center_of_mass_within_range():
    cfg = AugmentConfig(**{**AugmentConfig.none().as_dict(), "shift_px": 3.0})
    x = np.repeat(bar_image(), 64, axis=0)
    out = Augmenter(cfg)(x, np.random.default_rng(2))
    before = np.array(center_of_mass(x[0]))
    moves = np.array([np.array(center_of_mass(o)) - before for o in out])
    assert np.abs(moves).max() <= 3.0 + 1e-3
    assert np.abs(moves).max() > 1.0  # it does move


def test_rotation_tilts_a_vertical_bar():
    cfg = AugmentConfig(**{**AugmentConfig.none().as_dict(), "rotate_deg": 30.0})
    out = Augmenter(cfg)(np.repeat(bar_image(), 32, axis=0), np.random.default_rng(3))
    # Column spread of the ink grows when the bar tilts away from vertical.
    spreads = [np.ptp(np.nonzero(o > 0.5)[1]) for o in out]
    assert max(spreads) >= 5


def test_thickness_makes_strokes_bolder_and_thinner():
    cfg = AugmentConfig(**{**AugmentConfig.none().as_dict(), "thickness_prob": 1.0})
    x = np.repeat(bar_image(), 64, axis=0)
    out = Augmenter(cfg)(x, np.random.default_rng(4))
    ink = out.sum(axis=(1, 2))
    assert ink.max() > x[0].sum() * 1.3 and ink.min() < x[0].sum() * 0.9


def test_elastic_distorts_but_keeps_most_ink():
    cfg = AugmentConfig(**{**AugmentConfig.none().as_dict(), "elastic_prob": 1.0, "elastic_px": 1.5})
    x = np.repeat(bar_image(), 8, axis=0)
    out = Augmenter(cfg)(x, np.random.default_rng(5))
    assert not np.allclose(out, x)
    np.testing.assert_allclose(out.sum(axis=(1, 2)), x.sum(axis=(1, 2)), rtol=0.35)


@pytest.mark.parametrize("name", ["rotate", "scale", "shear", "shift", "elastic", "thickness"])
def test_ablation_switches_off_only_one_family(name):
    cfg = AugmentConfig.without(name)
    default = AugmentConfig()
    changed = [k for k, v in cfg.as_dict().items() if v != default.as_dict()[k]]
    assert changed and all(cfg.as_dict()[k] == 0 for k in changed)


def test_schedule_warms_up_then_decays_to_the_floor():
    lrs = [warmup_cosine(s, 100, 1.0, warmup_steps=10, final_fraction=0.01) for s in range(101)]
    assert lrs[0] < lrs[5] < lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.01)
