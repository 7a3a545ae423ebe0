"""The regional ways of writing a digit that the training data adds (tools/handstyles.py).

Each style must change a digit the way the written form does, within the
measured ranges, and leave alone a digit it does not apply to.
"""
import numpy as np
import pytest

from tools import handstyles

# A one-stroke 1 written top to bottom, a 9 whose tail ends at the bottom, a 0.
ONE = [[[500, 0], [500, 500], [500, 1000]]]
NINE = [[[700, 300], [500, 0], [300, 300], [500, 450], [700, 300], [700, 1000]]]
ZERO = [[[500, 0], [200, 500], [500, 1000], [800, 500], [500, 0]]]


def points(strokes):
    return np.array([p for s in strokes for p in s], dtype=float)


@pytest.mark.parametrize("seed", range(20))
def test_flag_one_adds_a_flag_up_into_the_top_from_the_left(seed):
    rng = np.random.default_rng(seed)
    out = handstyles.flag_one(ONE, rng)
    assert len(out) == 1
    flagged = np.array(out[0], dtype=float)
    start, top = flagged[0], np.array(ONE[0][0], dtype=float)
    length = np.hypot(*(top - start)) / 1000.0
    angle = np.degrees(np.arctan2(start[1] - top[1], top[0] - start[0]))
    assert 0.19 <= length <= 1.11
    assert 23 <= angle <= 77  # below the horizontal, to the left: not a 7's bar
    assert flagged[-1].tolist() == ONE[0][-1]  # the stem itself is kept


def test_flag_one_reaches_the_long_flags_of_continental_writers():
    rng = np.random.default_rng(0)
    lengths = []
    for _ in range(200):
        flagged = np.array(handstyles.flag_one(ONE, rng)[0], dtype=float)
        lengths.append(np.hypot(*(flagged[0] - np.array(ONE[0][0]))) / 1000.0)
    assert max(lengths) > 0.95 and min(lengths) < 0.35


def test_flag_one_leaves_a_two_stroke_one_alone():
    two_strokes = [[[500, 0], [500, 1000]], [[400, 1000], [600, 1000]]]
    assert handstyles.flag_one(two_strokes, np.random.default_rng(0)) == two_strokes


def test_flag_one_written_bottom_up_gets_its_flag_at_the_top():
    reversed_one = [ONE[0][::-1]]
    flagged = np.array(handstyles.flag_one(reversed_one, np.random.default_rng(1))[0], dtype=float)
    assert flagged[0][1] > 0  # the flag starts below the top it climbs to
    assert flagged[:, 1].min() <= 5


@pytest.mark.parametrize("seed", range(20))
def test_hook_nine_turns_the_tail_back_to_the_left(seed):
    out = handstyles.hook_nine(NINE, np.random.default_rng(seed))
    assert len(out) == len(NINE)
    tail = np.array(out[-1], dtype=float)
    assert tail[:len(NINE[-1])].tolist() == np.array(NINE[-1], dtype=float).tolist()  # old ink kept
    end, hook_end = np.array(NINE[-1][-1], dtype=float), tail[-1]
    h = 1000.0
    assert 0.08 * h <= end[0] - hook_end[0] <= 0.37 * h  # to the left
    assert -0.02 * h <= end[1] - hook_end[1] <= 0.17 * h  # level or a little back up
    assert tail[len(NINE[-1]):, 1].max() > end[1]  # first on down, then round


def test_hook_nine_leaves_a_nine_whose_last_stroke_ends_high_alone():
    ends_high = [[[700, 1000], [700, 300], [500, 0], [300, 300], [500, 450], [700, 300]]]
    assert handstyles.hook_nine(ends_high, np.random.default_rng(0)) == ends_high


@pytest.mark.parametrize("seed", range(10))
def test_slash_zero_adds_one_stroke_across_the_oval(seed):
    out = handstyles.slash_zero(ZERO, np.random.default_rng(seed))
    assert len(out) == 2 and out[0] == ZERO[0]
    slash = np.array(out[1], dtype=float)
    (x0, y0), (x1, y1) = points(ZERO).min(axis=0), points(ZERO).max(axis=0)
    assert abs(slash[-1, 0] - slash[0, 0]) > 0.3 * (x1 - x0)  # it crosses, not a dot
    assert slash[0, 1] >= y1 - 1 and slash[-1, 1] <= y0 + 1  # from the bottom edge past the top


def test_every_style_is_registered_for_its_digit():
    assert handstyles.STYLES == {0: handstyles.slash_zero, 1: handstyles.flag_one, 9: handstyles.hook_nine}
