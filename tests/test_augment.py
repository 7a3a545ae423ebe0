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


# ---- the exact maps, against a reference written from the docstrings, with scripted draws

class ScriptedRng:
    """Stands in for the generator: each draw returns the next scripted value (the
    same for every image), and must lie within the bounds the code asked for."""

    def __init__(self, *values):
        self.values = list(values)
        self.bounds = []  # (low, high) of each uniform draw, as asked

    def uniform(self, low, high, size):
        self.bounds.append((low, high))
        value = np.broadcast_to(np.asarray(self.values.pop(0), np.float64), size).copy()
        assert np.all(low <= value) and np.all(value <= high), (low, value, high)
        return value

    def random(self, size):
        return np.full(size, self.values.pop(0), np.float64)


def test_affine_sampling_coordinates_match_the_reference_map():
    """Output pixel (x, y) about the centre samples the input at M^-1 ((x, y) - shift),
    M = rotation @ horizontal shear @ diag(scale * aspect, scale / aspect)."""
    from model.augment import _affine_source_coords
    angle, scale, aspect, shear, shift = 20.0, 1.1, 0.9, 0.3, (1.5, -2.0)
    cfg = AugmentConfig(rotate_deg=30, scale=0.2, aspect=0.2, shear=0.5, shift_px=3)
    rng = ScriptedRng(angle, np.log(scale), np.log(aspect), shear, shift)
    coords = _affine_source_coords(2, cfg, rng)
    t = np.deg2rad(angle)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    m = rotation @ np.array([[1, shear], [0, 1]]) @ np.diag([scale * aspect, scale / aspect])
    rows, cols = np.mgrid[0:28, 0:28] - 13.5
    offsets = np.stack([cols - shift[0], rows - shift[1]])                # (x, y) per pixel
    src_x, src_y = np.einsum("ij,jhw->ihw", np.linalg.inv(m), offsets) + 13.5
    assert coords.shape == (2, 28, 28, 2) and coords.dtype == np.float32
    for image in coords:
        np.testing.assert_allclose(image[..., 0], src_y, atol=1e-4)
        np.testing.assert_allclose(image[..., 1], src_x, atol=1e-4)


def test_a_shift_moves_ink_by_whole_pixels_and_bilinear_splits_a_half_pixel():
    from model.augment import _affine_source_coords, _bilinear
    dot = np.zeros((1, 28, 28), np.float32)
    dot[0, 10, 12] = 1.0
    cfg = AugmentConfig(rotate_deg=0, scale=0, aspect=0, shear=0, shift_px=20)
    moved = _bilinear(dot, _affine_source_coords(1, cfg, ScriptedRng(0, 0, 0, 0, (2.0, 3.0))))
    assert moved[0, 13, 14] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)
    half = _bilinear(dot, _affine_source_coords(1, cfg, ScriptedRng(0, 0, 0, 0, (0.5, 0.0))))
    assert half[0, 10, 12] == pytest.approx(0.5) and half[0, 10, 13] == pytest.approx(0.5)
    gone = _bilinear(dot, _affine_source_coords(1, cfg, ScriptedRng(0, 0, 0, 0, (-20.0, 0.0))))
    assert not gone.any()  # sampled outside the image: nothing, not the edge repeated


@pytest.mark.parametrize("shift,uncovered", [((3.0, 0.0), (slice(None), slice(0, 3))),
                                             ((0.0, 3.0), (slice(0, 3), slice(None))),
                                             ((0.5, 0.0), (slice(None), slice(0, 1)))])
def test_ink_moved_off_an_edge_leaves_the_uncovered_band_empty(shift, uncovered):
    """A full page moved right (or down) by 3 px: the first 3 columns (rows) sample
    outside the image and are blank, not the edge repeated nor wrapped from the other
    side; moved half a pixel, the first column is half ink."""
    from model.augment import _affine_source_coords, _bilinear
    page = np.ones((1, 28, 28), np.float32)
    cfg = AugmentConfig(rotate_deg=0, scale=0, aspect=0, shear=0, shift_px=3)
    out = _bilinear(page, _affine_source_coords(1, cfg, ScriptedRng(0, 0, 0, 0, shift)))[0]
    band = out[uncovered]
    expected = 0.5 if 0.5 in shift else 0.0
    np.testing.assert_allclose(band, expected, atol=1e-6)
    assert out[14, 14] == pytest.approx(1.0)


def test_thickness_blends_toward_the_four_neighbour_dilation_or_erosion():
    from model.augment import _thickness
    dot = np.zeros((3, 28, 28), np.float32)
    dot[:, 10, 12] = 1.0
    cfg = AugmentConfig(thickness_prob=0.5)
    rng = ScriptedRng(np.array([1.0, -0.5, 1.0, 1.0]), np.array([0.2, 0.2, 0.7, 0.5]))
    dot = np.concatenate([dot, dot[:1]])
    out = _thickness(dot, cfg, rng)
    assert rng.bounds == [(-0.6, 1)]  # thinning capped at 60 %: full erosion erases thin strokes
    cross = [(10, 12), (9, 12), (11, 12), (10, 11), (10, 13)]
    assert all(out[0][p] == 1.0 for p in cross) and out[0].sum() == 5.0 and out[0, 9, 11] == 0
    assert out[1, 10, 12] == pytest.approx(0.5) and out[1].sum() == pytest.approx(0.5)
    np.testing.assert_array_equal(out[2], dot[2])  # drawn over thickness_prob: untouched
    np.testing.assert_array_equal(out[3], dot[3])  # drawn at exactly thickness_prob: untouched too
    block = np.zeros((1, 28, 28), np.float32)
    block[0, 9:12, 11:14] = 1.0
    thinned = _thickness(block, cfg, ScriptedRng(np.array([-0.5]), np.array([0.0])))[0]
    assert thinned[10, 12] == 1.0                              # its own 4 neighbours are ink
    assert thinned[9, 11] == pytest.approx(0.5) and thinned[9, 12] == pytest.approx(0.5)


def test_elastic_fields_are_smooth_unit_noise_scaled_and_only_where_drawn():
    from model.augment import _elastic_displacement, _gaussian_matrix
    gauss = _gaussian_matrix(28, 4.0)
    cfg = AugmentConfig(elastic_prob=0.5, elastic_px=0.8)
    field = _elastic_displacement(3, cfg, np.random.default_rng(0), gauss)
    rng = np.random.default_rng(0)
    chosen = np.flatnonzero(rng.random(3) < 0.5)
    assert field.shape == (3, 28, 28, 2) and field.dtype == np.float32
    for i in range(3):
        if i in chosen:
            assert field[i].std() == pytest.approx(0.8, rel=1e-3)
            # Smooth: neighbours differ by a fraction of the spread (white noise: ~1.1x it).
            assert np.abs(np.diff(field[i], axis=0)).mean() < 0.25 * 0.8
        else:
            assert not field[i].any()


def test_gaussian_matrix_rows_are_normalised_gaussians():
    from model.augment import _gaussian_matrix
    g = _gaussian_matrix(5, 1.5)
    assert g.dtype == np.float32
    expected = np.exp(-((np.arange(5)[:, None] - np.arange(5)[None, :]) ** 2) / (2 * 1.5 ** 2))
    np.testing.assert_allclose(g, expected / expected.sum(axis=1, keepdims=True), rtol=1e-6)


def test_elastic_fields_are_centred_so_they_distort_without_moving_the_digit():
    """A field is smooth noise about zero: over many images the mean displacement is a
    small fraction of a pixel (a biased draw would shift every digit by pixels)."""
    from model.augment import _elastic_displacement, _gaussian_matrix
    cfg = AugmentConfig(elastic_prob=1.0, elastic_px=0.8)
    field = _elastic_displacement(200, cfg, np.random.default_rng(5), _gaussian_matrix(28, 4.0))
    assert abs(field[..., 0].mean()) < 0.1 and abs(field[..., 1].mean()) < 0.1
