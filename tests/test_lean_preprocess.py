"""The shortcuts of the lean preprocessing (issue 11) are taken when they should be
and give the same bits as the general code they skip."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app import preprocess
from tests.test_preprocess_equivalence import CASES, font_canvas

SHORTCUTS = ("_uniform_ring_box", "_one_channel_ink", "_spread_solid_ink")


def without(shortcuts, work, image, monkeypatch):
    """`work(image)` with the named shortcuts declining every image, so the general code runs."""
    with monkeypatch.context() as patch:
        for name in shortcuts:
            patch.setattr(preprocess, name, lambda *args, **kwargs: None)
        return work(image.copy())


def spy(monkeypatch, name):
    """What each call of preprocess.<name> returned, in a list that fills as it is called."""
    returned, real = [], getattr(preprocess, name)
    monkeypatch.setattr(preprocess, name, lambda *args: returned.append(real(*args)) or returned[-1])
    return returned


@pytest.mark.parametrize("ink", ["transparent", "black", "white"])
@pytest.mark.parametrize("digit,variant", [(7, "default"), (1, "small"), (4, "default"), (0, "thick"),
                                           (8, "thin")])
def test_a_canvas_takes_the_pillow_box_and_gets_the_same_window(digit, variant, ink, monkeypatch):
    canvas = font_canvas(digit, variant, ink, seed=digit)
    found = spy(monkeypatch, "_uniform_ring_box")
    fast = preprocess._ink_window(canvas.copy())
    assert found and found[0] is not None  # the shortcut was taken, and gave this window:
    (top, bottom, left, right), _ = found[0]
    assert (fast.top, fast.left, fast.ink.shape) == (top, left, (bottom - top, right - left))
    slow = without(["_uniform_ring_box"], preprocess._ink_window, canvas, monkeypatch)
    assert (fast.top, fast.left, fast.shape) == (slow.top, slow.left, slow.shape)
    np.testing.assert_array_equal(fast.ink, slow.ink)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_ink_next_to_a_thin_ring_gets_a_window_from_the_image_edge(mode):
    """A 20x20 image has a 1 px ring; ink right inside it keeps its one pixel of margin, cut at
    the image's edge (L and RGB by the NumPy search, RGBA by the Pillow box)."""
    background = {"L": 255, "RGB": (255, 255, 255), "RGBA": (255, 255, 255, 255)}[mode]
    ink = {"L": 0, "RGB": (0, 0, 0), "RGBA": (0, 0, 0, 255)}[mode]
    image = Image.new(mode, (20, 20), background)
    image.putpixel((1, 1), ink)
    image.putpixel((18, 1), ink)
    window = preprocess._ink_window(image)
    assert (window.top, window.left, window.ink.shape) == (0, 0, (3, 20))
    assert window.ink[1, 1] == window.ink[1, 18] == 1.0 and window.ink.sum() == 2.0


@pytest.mark.parametrize("name,image", CASES, ids=[name for name, _ in CASES])
def test_every_equivalence_case_gets_the_same_digit_with_and_without_the_shortcuts(name, image, monkeypatch):
    def digit(image):
        try:
            return preprocess.preprocess(image)
        except preprocess.BlankImageError:
            return None

    fast = digit(image.copy())
    slow = without(SHORTCUTS, digit, image, monkeypatch)
    assert (fast is None) == (slow is None)
    if fast is not None:
        np.testing.assert_array_equal(fast, slow)


def test_ink_on_the_border_ring_is_not_a_uniform_ring_and_the_ring_colour_comes_back():
    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    canvas.putpixel((140, 2), (0, 0, 0, 255))  # inside the 6 px ring
    assert preprocess._uniform_ring_box(canvas) is None
    canvas.putpixel((140, 2), (0, 0, 0, 0))
    canvas.putpixel((140, 140), (0, 0, 0, 255))
    box, ring_key = preprocess._uniform_ring_box(canvas)
    assert box == (139, 142, 139, 142)
    assert bytes(ring_key) == bytes([0, 0, 0, 0])
    page = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    page.putpixel((100, 200), (0, 0, 0, 255))
    page.putpixel((101, 200), (255, 255, 255, 254))  # differs in alpha alone: still ink
    box, ring_key = preprocess._uniform_ring_box(page)
    assert box == (199, 202, 99, 103)
    assert bytes(ring_key) == bytes([255, 255, 255, 255])
    hidden_colour = Image.new("RGBA", (280, 280), (255, 0, 0, 0))  # invisible, but uniform
    hidden_colour.putpixel((50, 60), (255, 0, 0, 9))
    assert preprocess._uniform_ring_box(hidden_colour)[0] == (59, 62, 49, 52)
    page.putpixel((0, 140), (254, 255, 255, 255))  # one ring pixel off the corner's colour
    assert preprocess._uniform_ring_box(page) is None
    assert preprocess._uniform_ring_box(Image.new("RGBA", (280, 280), (0, 0, 0, 0))) is None
    assert preprocess._uniform_ring_box(Image.new("RGBA", (280, 280), (255, 255, 255, 255))) is None


@pytest.mark.parametrize("ink", ["transparent", "black", "white"])
@pytest.mark.parametrize("digit,variant", [(7, "default"), (1, "thin"), (0, "thick"), (5, "small")])
def test_a_browser_canvas_is_read_from_one_channel_to_the_same_bits(digit, variant, ink, monkeypatch):
    canvas = font_canvas(digit, variant, ink, seed=digit + 11)
    taken = spy(monkeypatch, "_one_channel_ink")
    fast = preprocess._ink_window(canvas.copy())
    assert taken and taken[0] is not None  # the shortcut was taken
    slow = without(["_one_channel_ink"], preprocess._ink_window, canvas, monkeypatch)
    assert (fast.top, fast.left, fast.shape) == (slow.top, slow.left, slow.shape)
    assert fast.ink.dtype == slow.ink.dtype == np.float32
    np.testing.assert_array_equal(fast.ink, slow.ink)


def rgba_window(pixels):
    return np.asarray(pixels, np.uint8).reshape(1, -1, 4)


def ring_of(*rgba):
    return np.frombuffer(bytes(rgba), "<u4").astype(np.uint32)


def test_one_channel_reading_refuses_what_it_cannot_read_exactly():
    clear, white, black = ring_of(0, 0, 0, 0), ring_of(255, 255, 255, 255), ring_of(0, 0, 0, 255)
    ink = preprocess._one_channel_ink
    assert ink(rgba_window([[0, 0, 0, 0], [0, 0, 0, 200]]), clear) is not None
    assert ink(rgba_window([[0, 0, 0, 0], [0, 0, 1, 200]]), clear) is None  # blue ink under the alpha
    assert ink(rgba_window([[255, 255, 255, 255], [30, 30, 30, 255]]), white) is not None
    assert ink(rgba_window([[255, 255, 255, 255], [30, 31, 30, 255]]), white) is None  # a colour
    assert ink(rgba_window([[255, 255, 255, 255], [30, 30, 30, 254]]), white) is None  # not opaque
    assert ink(rgba_window([[0, 0, 0, 255], [220, 220, 220, 255]]), black) is not None
    assert ink(rgba_window([[9, 9, 9, 255]]), ring_of(10, 10, 11, 255)) is None  # a coloured ring
    assert ink(rgba_window([[9, 9, 9, 255]]), ring_of(10, 10, 10, 128)) is None  # a see-through ring
    assert ink(rgba_window([[9, 9, 9, 255]]), np.concatenate([white, black])) is None  # ring not uniform
    np.testing.assert_array_equal(ink(rgba_window([[0, 0, 0, 0], [0, 0, 0, 51]]), clear),
                                  np.array([[0.0, 0.2]], np.float32))


@pytest.mark.parametrize("shape", [(280, 280), (97, 301), (12, 12), (5, 40), (3, 3), (1, 1), (2, 9)])
def test_ring_values_are_the_masked_ring(shape):
    values = np.arange(shape[0] * shape[1], dtype=np.uint32).reshape(shape)
    got = preprocess._ring_values(values)
    expected = values[preprocess._border_ring(shape)]
    assert got[0] == expected[0]
    np.testing.assert_array_equal(np.sort(got), np.sort(expected))


def test_levels_and_luma_are_the_float32_products_of_every_8_bit_value():
    """The lookup tables the arithmetic replaced held v / 255 and its luma shares."""
    table = np.arange(256, dtype=np.float32) / 255.0
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(preprocess._levels(values), table)
    rgba = np.stack([values, values[::-1], np.roll(values, 7), values[::3].repeat(3)[:256]], axis=-1)
    gray, alpha = preprocess._gray_alpha8(rgba)
    luma = [(table * weight).astype(np.float32) for weight in (0.299, 0.587, 0.114)]
    expected = luma[0][rgba[:, 0]] + luma[1][rgba[:, 1]]
    expected += luma[2][rgba[:, 2]]
    np.testing.assert_array_equal(gray, expected)
    np.testing.assert_array_equal(alpha, table[rgba[:, 3]])


def test_padded_is_np_pad():
    values = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    for width in (1, 3):
        padded = preprocess._padded(values, width)
        np.testing.assert_array_equal(padded, np.pad(values, width))
        assert padded.dtype == np.float32


@pytest.mark.parametrize("seed", range(6))
def test_kth_largest_is_the_kth_largest_positive_value_with_or_without_ties_at_the_top(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        values = rng.random(n).astype(np.float32)
        values[rng.random(n) < rng.random()] = 0.0
        values[rng.random(n) < rng.random()] = values.max()  # solid ink: ties at the maximum
        k, size = int(rng.integers(1, 20)), [None, int(rng.integers(1, 3000))][seed % 2]
        k_used = min(k, max(1, (n if size is None else size) // 50))
        positive = np.sort(values[values > 0])[::-1]
        expected = float(positive[k_used - 1]) if positive.size >= k_used else 0.0
        assert preprocess._kth_largest(values, size, k) == expected


def blocks_reach_the_floor(window):
    """The blank check's second test, computed the long way: the 3x3 reduction's fourth largest."""
    return preprocess._kth_largest(*preprocess._block_average(window), k=4) >= preprocess.CONTRAST_FLOOR / 2


@st.composite
def sparse_windows(draw):
    """A window of an image (possibly the whole of it) holding a few solid pixels on
    faint or empty ground: the shapes where the solid-ink shortcut is closest to wrong."""
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    top, left = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    shape = (top + height + draw(st.integers(0, 40)), left + width + draw(st.integers(0, 40)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    ground = draw(st.sampled_from([0.0, 0.01, 0.05]))
    ink = (rng.random((height, width)) * ground).astype(np.float32)
    count = draw(st.integers(0, 8))
    rows, cols = rng.integers(0, height, count), rng.integers(0, width, count)
    ink[rows, cols] = np.float32(preprocess.SOLID_INK)  # the least a solid pixel may be
    return preprocess.InkWindow(ink, shape, top, left)


@settings(max_examples=400, deadline=None)
@given(sparse_windows())
def test_solid_ink_spread_over_four_blocks_always_passes_the_block_check(window):
    """The shortcut only ever says yes where the reduction it skips says yes too."""
    if preprocess._spread_solid_ink(window.ink, wanted=4):
        assert blocks_reach_the_floor(window)


@pytest.mark.parametrize("side", [6, 8, 13, 14, 16, 280])
def test_four_lone_solid_pixels_four_rows_apart_are_four_blocks_over_the_floor(side):
    """The tightest case the shortcut accepts: nothing but four pixels at SOLID_INK, rows
    BLOCK_SPAN apart (side 8 reduces by 4, the largest blocks there are)."""
    ink = np.zeros((max(side, 13), side), np.float32)
    for i in range(4):
        ink[i * preprocess.BLOCK_SPAN, 0] = preprocess.SOLID_INK
    window = preprocess.InkWindow(ink, ink.shape)
    assert preprocess._spread_solid_ink(ink, wanted=4)
    reduced, _ = preprocess._block_average(window)
    assert np.sort(reduced.ravel())[-4] > preprocess.CONTRAST_FLOOR / 2


def test_solid_ink_in_fewer_blocks_or_below_the_level_is_left_to_the_reduction():
    ink = np.zeros((40, 40), np.float32)
    ink[10:13, 10:13] = 1.0  # one 3x3 blot: rows and columns within BLOCK_SPAN
    assert not preprocess._spread_solid_ink(ink, wanted=4)
    ink[:, 20] = preprocess.SOLID_INK - 1e-3  # a long line just under the level
    assert not preprocess._spread_solid_ink(ink, wanted=4)
    ink[::9, 30] = 1.0  # five pixels in one column, nine rows apart
    assert preprocess._spread_solid_ink(ink, wanted=4)
    assert not preprocess._spread_solid_ink(ink, wanted=6)


@pytest.mark.parametrize("ink", ["transparent", "black", "white"])
@pytest.mark.parametrize("digit,variant", [(7, "default"), (1, "thin"), (0, "thick"), (5, "small")])
def test_a_drawn_digit_passes_the_block_check_without_the_reduction(digit, variant, ink, monkeypatch):
    canvas = font_canvas(digit, variant, ink, seed=digit)
    reductions = spy(monkeypatch, "_block_average")
    fast = preprocess.preprocess(canvas.copy())
    assert reductions == []
    slow = without(["_spread_solid_ink"], preprocess.preprocess, canvas, monkeypatch)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("blots,holds", [(4, True), (3, False)])
def test_faint_ink_is_judged_by_the_fourth_largest_block(blots, holds):
    """Ink below SOLID_INK says nothing by itself: the reduction decides, and it wants four
    blocks at CONTRAST_FLOOR / 2 (a 60x60 image has 400 blocks, so k stays 4)."""
    ink = np.zeros((60, 60), np.float32)
    for i in range(blots):
        ink[3 + 15 * i:6 + 15 * i, 30:33] = 0.5  # one whole 3x3 block each
    window = preprocess.InkWindow(ink, ink.shape)
    assert not preprocess._spread_solid_ink(ink, wanted=4)
    assert preprocess._blocks_hold_ink(window) is holds
