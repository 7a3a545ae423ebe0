"""app/segment.py piece by piece, on hand-built ink, boxes and scores: what each rule
decides, exactly (tests/test_numbers.py reads drawn numbers end to end)."""
import io

import numpy as np
import pytest
from PIL import Image

from app import segment
from app.preprocess import BlankImageError
from app.segment import Group


def box(left, top, right, bottom, labels=(1,)):
    return Group(labels=labels, box=(left, top, right, bottom))


def ink_with(*rects, shape=(60, 120)):
    """Float ink 1.0 inside each (left, top, right, bottom) rectangle."""
    ink = np.zeros(shape, np.float32)
    for left, top, right, bottom in rects:
        ink[top:bottom, left:right] = 1.0
    return ink


# ---------------------------------------------------------------- geometry

def test_shared_columns_is_the_overlap_over_the_narrower_width():
    wide, narrow = box(0, 0, 40, 10), box(30, 0, 50, 10)
    assert segment.shared_columns(wide, narrow) == 10 / 20
    assert segment.shared_columns(narrow, wide) == 10 / 20
    assert segment.shared_columns(box(0, 0, 10, 5), box(20, 0, 30, 5)) == 0.0   # apart: not negative
    assert segment.shared_columns(box(0, 0, 10, 5), box(3, 0, 3, 5)) == 0.0     # zero width: no division by 0
    assert segment.shared_columns(box(0, 0, 10, 5), box(2, 0, 6, 5)) == 1.0
    assert segment.shared_columns(box(0, 0, 10, 5), box(3, 0, 4, 5)) == 1.0     # one column wide


def test_join_unites_labels_and_boxes():
    joined = segment.join(box(5, 10, 20, 30, labels=(2,)), box(0, 20, 12, 40, labels=(1, 3)))
    assert joined.labels == (2, 1, 3)
    assert joined.box == (0, 10, 20, 40)
    assert (joined.width, joined.height) == (20, 30)
    assert segment.center_x(joined) == 10.0


def test_line_height_is_the_median_of_the_tall_pieces():
    pieces = [box(0, 0, 5, 100), box(0, 0, 5, 60), box(0, 0, 5, 80), box(0, 0, 5, 49), box(0, 0, 5, 10)]
    assert segment.line_height(pieces) == 80.0   # 49 and 10 are below half of 100
    assert segment.line_height([box(0, 0, 5, 50), box(0, 0, 5, 100)]) == 75.0   # exactly half counts


def test_image_box_scales_to_image_pixels_and_stays_inside():
    assert segment.image_box((10, 4, 30, 20), 2.5, (100, 60)) == [25, 10, 75, 50]
    assert segment.image_box((10, 4, 50, 30), 2.5, (100, 60)) == [25, 10, 100, 60]


@pytest.mark.parametrize("orientation,size", [(None, (30, 20)), (1, (30, 20)), (3, (30, 20)),
                                              (5, (20, 30)), (6, (20, 30)), (7, (20, 30)), (8, (20, 30))])
def test_upright_size_follows_the_exif_rotation(orientation, size):
    image = Image.new("L", (30, 20))
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", exif=exif)
        image = Image.open(io.BytesIO(buffer.getvalue()))
    assert segment.upright_size(image) == size


def test_upright_size_ignores_a_broken_exif_block():
    class BrokenExif:
        size = (30, 20)

        def getexif(self):
            raise SyntaxError("not a TIFF header")

    assert segment.upright_size(BrokenExif()) == (30, 20)


# ---------------------------------------------------------------- pieces

def test_find_pieces_labels_diagonal_neighbours_as_one_piece_left_to_right_boxes():
    ink = ink_with((60, 10, 70, 40), (10, 10, 20, 40))
    ink[40, 20] = 1.0   # touches (39, 19) only by a corner: the same piece
    labels, pieces = segment.find_pieces(ink)
    boxes = sorted(p.box for p in pieces)
    assert boxes == [(10, 10, 21, 41), (60, 10, 70, 40)]
    assert sorted(p.labels for p in pieces) == [(1,), (2,)]
    for piece in pieces:
        left, top, right, bottom = piece.box
        assert (labels[top:bottom, left:right] == piece.labels[0]).sum() == (ink[top:bottom, left:right] > 0).sum()
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {0, 1, 2}


def test_find_pieces_drops_specks_below_a_hundredth_of_the_largest_ink():
    ink = ink_with((10, 10, 30, 30))            # 400 units of ink
    ink[50, 100] = 4.0                          # exactly 1%: kept
    ink[50, 5] = 3.9                            # below: dropped, and its pixel unlabelled
    labels, pieces = segment.find_pieces(ink)
    assert sorted(p.box for p in pieces) == [(10, 10, 30, 30), (100, 50, 101, 51)]
    assert labels[50, 5] == 0 and labels[50, 100] > 0


def test_find_pieces_refuses_blank_ink_and_too_many_marks():
    with pytest.raises(BlankImageError, match="^The image holds no ink: draw or upload a number.$"):
        segment.find_pieces(np.zeros((20, 20), np.float32))
    grid = np.zeros((60, 4 * (segment.MAX_PIECES + 1)), np.float32)
    grid[10, ::4] = 1.0
    with pytest.raises(segment.TooManyDigits, match=f"{segment.MAX_PIECES + 1} separate marks"):
        segment.find_pieces(grid)
    grid[10, -4] = 0.0
    assert len(segment.find_pieces(grid)[1]) == segment.MAX_PIECES


# ---------------------------------------------------------------- grouping

def test_a_fragment_joins_the_tall_piece_it_shares_most_columns_with():
    left, right = box(0, 10, 30, 110, labels=(1,)), box(60, 10, 90, 110, labels=(2,))
    bar = box(15, 0, 75, 8, labels=(3,))        # half of each digit's columns: a tie
    bar_right = box(50, 0, 88, 8, labels=(4,))  # 28 of its 38 columns over the right digit
    groups, contested, wide = segment.group_pieces([left, right, bar_right])
    assert [g.labels for g in groups] == [(1,), (2, 4)]
    assert groups[1].box == (50, 0, 90, 110)
    assert contested == [] and wide == []
    groups, _, _ = segment.group_pieces([left, right, bar])   # a tie keeps the first (leftmost) group
    assert [g.labels for g in groups] == [(1, 3), (2,)]


def test_a_small_piece_near_a_tall_one_is_contested_the_model_deciding():
    """A 4 whose hook and upright are drawn apart: the hook, short and sharing no
    columns, would be a small digit of its own; within LOOSE_GAP of a tall
    neighbour, and together no wider than TOUCHING_ASPECT of the line, the pair
    goes to the model with reading them apart as the prior (NEAR_MARGIN)."""
    hook = box(0, 20, 50, 70, labels=(1,))            # 50 tall: short beside a 100 px line
    upright = box(95, 0, 105, 100, labels=(2,))
    tall = box(200, 0, 240, 100, labels=(3,))
    assert segment.line_height([hook, upright, tall]) == 100
    groups, contested, _ = segment.group_pieces([hook, upright, tall])
    assert [g.labels for g in groups] == [(1,), (2,), (3,)]
    assert contested == [(0, 1, -segment.NEAR_MARGIN)]          # 45 px apart, 105 wide together
    far = box(0, 20, 45, 70, labels=(1,))                       # 50 px apart: LOOSE_GAP * 100 is too far
    assert segment.group_pieces([far, upright, tall])[1] == []
    widest = box(-20, 20, 50, 70, labels=(1,))                  # together 125 px: 1.25 * 100 still goes
    assert segment.group_pieces([widest, upright, tall])[1] == [(0, 1, -segment.NEAR_MARGIN)]
    wider = box(-21, 20, 50, 70, labels=(1,))                   # together 126 px: too wide for one digit
    assert segment.group_pieces([wider, upright, tall])[1] == []
    small_pair = [box(0, 20, 40, 70, labels=(1,)), box(60, 20, 100, 70, labels=(2,)), tall,
                  box(300, 0, 340, 100, labels=(4,)), box(400, 0, 440, 100, labels=(5,))]
    assert segment.line_height(small_pair) == 100
    assert segment.group_pieces(small_pair)[1] == []            # two short pieces: neither is a digit's height
    exact = box(95, 40, 105, 100, labels=(2,))                  # exactly FRAGMENT_SIZE of the line: tall
    line = [hook, exact, tall, box(300, 0, 340, 100, labels=(4,)), box(400, 0, 440, 100, labels=(5,))]
    assert segment.line_height(line) == 100
    assert segment.group_pieces(line)[1] == [(0, 1, -segment.NEAR_MARGIN)]
    after = box(250, 20, 290, 70, labels=(4,))                  # a short piece right of a tall one
    assert segment.group_pieces([tall, after, box(400, 0, 440, 100, labels=(5,))])[1] == [
        (0, 1, -segment.NEAR_MARGIN)]


def test_a_fragment_sharing_too_few_columns_stays_a_small_digit_or_is_dropped_as_a_speck():
    digit = box(0, 0, 40, 100, labels=(1,))
    small_digit = box(60, 50, 80, 90, labels=(2,))   # 40 tall: >= 2 * SPECK_SIZE * 100
    speck = box(100, 50, 110, 60, labels=(3,))       # 10: below SPECK_SIZE * 100
    flat = box(120, 80, 150, 90, labels=(4,))        # wide enough but 10 tall: a dash, dropped
    groups, contested, _ = segment.group_pieces([digit, small_digit, speck, flat])
    assert [g.labels for g in groups] == [(1,), (2,)]
    assert contested == [(0, 1, -segment.NEAR_MARGIN)]   # 20 px apart: maybe one digit (below)
    edge = box(30, 50, 50, 90, labels=(5,))          # 10 of 20 columns over the digit: exactly half joins
    assert [g.labels for g in segment.group_pieces([digit, edge])[0]] == [(1, 5)]
    less = box(31, 50, 51, 90, labels=(6,))          # 9 of 20: its own small digit
    assert [g.labels for g in segment.group_pieces([digit, less])[0]] == [(1,), (6,)]


def test_the_largest_fragment_joins_first_so_a_speck_can_follow_it():
    body = box(0, 30, 40, 100, labels=(1,))
    bar = box(20, 0, 60, 10, labels=(2,))       # a 5's bar reaching past the body: half its columns
    dot = box(50, 12, 56, 18, labels=(3,))      # under the part of the bar past the body only
    groups, _, _ = segment.group_pieces([body, dot, bar])
    assert [g.labels for g in groups] == [(1, 2, 3)]


def test_fragment_size_is_a_floor_that_counts_as_tall():
    left, right = box(0, 0, 40, 100, labels=(1,)), box(200, 0, 240, 100, labels=(3,))
    upright = box(10, 0, 30, 60, labels=(2,))   # exactly FRAGMENT_SIZE of the line height, under `left`
    groups, contested, _ = segment.group_pieces([left, upright, right])
    assert [g.labels for g in groups] == [(1,), (2,), (3,)]
    assert contested == [(0, 1, segment.SEPARATE_MARGIN)]
    shorter = box(10, 0, 30, 59, labels=(2,))
    groups, contested, _ = segment.group_pieces([left, shorter, right])
    assert [g.labels for g in groups] == [(1, 2), (3,)] and contested == []


def test_tall_neighbours_sharing_columns_are_contested_with_the_join_margin():
    one = box(0, 0, 12, 100, labels=(1,))
    under_bar = box(5, 10, 40, 100, labels=(2,))
    apart = box(80, 0, 120, 100, labels=(3,))
    groups, contested, wide = segment.group_pieces([apart, under_bar, one])
    assert [g.labels for g in groups] == [(1,), (2,), (3,)]   # left to right
    assert contested == [(0, 1, segment.SEPARATE_MARGIN)]
    assert wide == []
    half = box(20, 0, 60, 100, labels=(2,))              # exactly half of the narrower: contested
    assert segment.group_pieces([box(0, 0, 40, 100), half])[1] == [(0, 1, segment.SEPARATE_MARGIN)]
    less = box(21, 0, 61, 100, labels=(2,))
    assert segment.group_pieces([box(0, 0, 40, 100), less])[1] == []


def test_every_neighbouring_pair_is_looked_at_after_one_that_is_not():
    small = box(-40, 60, -20, 100, labels=(1,))         # a small digit first, 60 px away: not contested
    one = box(40, 0, 52, 100, labels=(2,))
    seven = box(45, 0, 80, 100, labels=(3,))
    assert segment.group_pieces([small, one, seven])[1] == [(1, 2, segment.SEPARATE_MARGIN)]


def test_a_narrow_upright_close_to_its_neighbour_is_contested_with_the_near_margin():
    bar = box(0, 0, 45, 100, labels=(1,))
    upright = box(50, 0, 58, 100, labels=(2,))      # 8 < 0.3 * 100 wide, gap 5 < 0.2 * 100
    _, contested, _ = segment.group_pieces([bar, upright])
    assert contested == [(0, 1, -segment.NEAR_MARGIN)]
    far = box(65, 0, 73, 100, labels=(2,))          # gap 20: not near
    assert segment.group_pieces([bar, far])[1] == []
    wide_pair = box(95, 0, 103, 100, labels=(3,))
    assert segment.group_pieces([box(0, 0, 90, 100), wide_pair])[1] == []   # joined would be 103 wide
    stroke = box(50, 0, 80, 100, labels=(2,))       # exactly STROKE_WIDTH wide: not narrow
    assert segment.group_pieces([bar, stroke])[1] == []
    thin = box(50, 0, 79, 100, labels=(2,))
    assert segment.group_pieces([bar, thin])[1] == [(0, 1, -segment.NEAR_MARGIN)]
    widest = box(92, 0, 100, 100, labels=(2,))      # joined exactly MAX_JOINED_WIDTH wide: allowed
    assert segment.group_pieces([box(0, 0, 90, 100), widest])[1] == [(0, 1, -segment.NEAR_MARGIN)]
    fat = box(50, 0, 85, 100, labels=(2,))          # both wider than a stroke
    assert segment.group_pieces([bar, fat])[1] == []
    short = box(50, 60, 58, 100, labels=(2,))       # 40 tall: a small digit, contested as one (below)
    assert segment.group_pieces([bar, short])[1] == [(0, 1, -segment.NEAR_MARGIN)]


def test_a_piece_much_wider_than_tall_is_marked_for_cutting_unless_already_joined():
    pair = box(0, 0, 126, 100, labels=(1,))
    digit = box(140, 0, 180, 100, labels=(2,))
    assert segment.group_pieces([pair, digit])[2] == [0]
    assert segment.group_pieces([box(0, 0, 125, 100), digit])[2] == []   # 1.25 exactly: one wide digit
    bar = box(10, 0, 110, 8, labels=(3,))
    groups, _, wide = segment.group_pieces([box(0, 20, 126, 100, labels=(1,)), bar])
    assert [g.labels for g in groups] == [(1, 3)] and wide == []          # two pieces: not one touching pair


@pytest.mark.parametrize("pairs,joins", [
    ([], 0), ([(0, 1)], 1), ([(0, 1), (1, 2)], 1), ([(0, 1), (1, 2), (2, 3)], 2),
    ([(0, 1), (2, 3)], 2), ([(1, 2), (2, 3), (3, 4), (5, 6)], 3), ([(i, i + 1) for i in range(79)], 40)])
def test_most_joins_counts_each_group_once(pairs, joins):
    assert segment.most_joins([(i, j, 1.0) for i, j in pairs]) == joins


# ---------------------------------------------------------------- ink of a group

def test_group_ink_keeps_only_its_pieces_within_a_margin_and_its_cut():
    ink = ink_with((10, 10, 20, 40), (22, 10, 30, 40))
    labels, pieces = segment.find_pieces(ink)
    first = next(p for p in pieces if p.box[0] == 10)
    crop = segment.group_ink(ink, labels, first)
    m = segment.CROP_MARGIN
    assert crop.shape == (30 + 2 * m, 10 + 2 * m) and crop.dtype == np.float32
    assert crop.sum() == 300 and crop[m:-m, m:-m].all()    # the neighbour 2 px away is left out
    edge = segment.group_ink(ink[8:, 9:], labels[8:, 9:], Group(labels=first.labels, box=(1, 2, 11, 32)))
    assert edge.shape == (34, 13) and edge.sum() == 300      # clipped by the image's top and left
    middle = Group(labels=first.labels, box=first.box, cut=(13, 17))
    cut = segment.group_ink(ink, labels, middle)
    assert cut.sum() == 4 * 30 and cut[:, m + 3:m + 7].sum() == 4 * 30


def test_cut_touching_offers_the_emptiest_middle_column_then_fixed_fractions_each_half_trimmed():
    # Two blobs joined by a thin bridge; the left one has a tail down its first
    # columns, the right one reaches higher: each half's rows are its own.
    ink = ink_with((10, 10, 40, 50), (10, 50, 13, 56), (50, 4, 80, 40), (40, 29, 50, 31))
    ink[29:31, 44] = 0.5                                                   # the bridge's thinnest column
    labels, pieces = segment.find_pieces(ink)
    assert len(pieces) == 1
    cuts = segment.cut_touching(ink, labels, pieces[0], min_height=0)
    # 70 columns wide: the emptiest (34 in), then 0.4, 0.5, 0.6 of the width (28, 35, 42 in)
    assert [left.cut[1] for left, _ in cuts] == [44, 38, 45, 52]
    assert [[h.box for h in halves] for halves in cuts[:2]] == [[(10, 10, 44, 56), (44, 4, 80, 40)],
                                                               [(10, 10, 38, 56), (38, 4, 80, 50)]]
    assert [h.cut for h in cuts[0]] == [(10, 44), (44, 80)]
    assert all(h.labels == pieces[0].labels for halves in cuts for h in halves)


def test_cut_touching_at_the_images_top_left_corner_offers_each_column_once():
    ink = ink_with((1, 1, 21, 41), (31, 6, 51, 41), (21, 20, 31, 22))
    ink[20:22, 26] = 0.5
    labels, pieces = segment.find_pieces(ink)
    cuts = segment.cut_touching(ink, labels, pieces[0], min_height=0)
    assert [left.cut[1] for left, _ in cuts] == [26, 21, 31]        # half the width is the emptiest too
    assert [h.box for h in cuts[0]] == [(1, 1, 26, 41), (26, 6, 51, 41)]


@pytest.mark.parametrize("emptiest,outside,cut_at", [(20, 19, 20), (39, 40, 39)])
def test_cut_touching_looks_for_the_emptiest_column_only_in_the_middle_half(emptiest, outside, cut_at):
    """A 40-column piece: columns 10..29 of it are its middle half."""
    ink = ink_with((10, 10, 50, 50))
    ink[10:50, outside] = 0.1         # emptier, but just outside the middle half
    ink[10:50, emptiest] = 0.5
    labels, pieces = segment.find_pieces(ink)
    cuts = segment.cut_touching(ink, labels, pieces[0], min_height=0)
    assert [h.cut for h in cuts[0]] == [(10, cut_at), (cut_at, 50)]


def test_cut_touching_leaves_out_cuts_with_an_empty_or_sliver_half():
    ink = ink_with((10, 10, 13, 50))
    ink[10:50, 11] = 0.5
    labels, pieces = segment.find_pieces(ink)
    assert segment.cut_touching(ink, labels, pieces[0], min_height=0) == []    # 3 px wide: every cut leaves 1 px
    ink = ink_with((10, 10, 15, 50))
    ink[10:50, 12] = 0.5
    labels, pieces = segment.find_pieces(ink)
    assert [[h.cut for h in halves] for halves in segment.cut_touching(ink, labels, pieces[0], min_height=0)] == [
        [(10, 12), (12, 15)], [(10, 13), (13, 15)]]
    ink = ink_with((10, 10, 30, 50))
    labels, pieces = segment.find_pieces(ink)
    wider = Group(labels=pieces[0].labels, box=(10, 10, 70, 50))  # its box reaches past the ink
    assert segment.cut_touching(ink, labels, wider, min_height=0) == []


def test_cut_touching_leaves_out_cuts_with_a_half_shorter_than_a_digit():
    """A tall loop with a short stroke sticking out at its top right (a crossed
    zero's slash running past it): cuts that leave the stroke alone are not offered."""
    ink = ink_with((10, 10, 40, 50), (40, 12, 75, 20))
    labels, pieces = segment.find_pieces(ink)
    # 65 columns: the emptiest of the middle half is where the stroke starts (30 in),
    # then 0.4, 0.5, 0.6 of the width (26, 32, 39 in); three leave the 8 px stroke alone
    assert [left.cut[1] for left, _ in segment.cut_touching(ink, labels, pieces[0], min_height=0)] == [40, 36, 42, 49]
    only = segment.cut_touching(ink, labels, pieces[0], min_height=24)
    assert [[h.box for h in halves] for halves in only] == [[(10, 10, 36, 50), (36, 10, 75, 50)]]
    everything = segment.cut_touching(ink, labels, pieces[0], min_height=0)
    assert segment.cut_touching(ink, labels, pieces[0], min_height=8) == everything   # the 8 px stroke is enough
    assert [left.cut[1] for left, _ in segment.cut_touching(ink, labels, pieces[0], min_height=9)] == [36]


# ---------------------------------------------------------------- deciding
# decide(base, contested, cuts, scores): candidates 0..base-1 are the groups,
# base + k joins contested pair k, cuts maps a group to its (left, right) halves.

def test_decide_joins_a_contested_pair_only_when_the_model_believes_the_join_more():
    contested = [(0, 1, 1.0)]
    scores = np.array([-0.5, -0.5, -0.1, -2.5])        # join: -2.5 + 1 against -1: apart
    assert segment.decide(3, contested, {}, scores) == [0, 1, 2]
    scores[3] = -2.0                                   # exactly even: joined
    assert segment.decide(3, contested, {}, scores) == [3, 2]


def test_decide_takes_the_surest_join_first_and_joins_a_group_once():
    contested = [(0, 1, 0.0), (1, 2, 0.0)]
    scores = np.array([-1.0, -1.0, -1.0, -0.5, -0.2])  # both joins gain; (1, 2) more
    assert segment.decide(3, contested, {}, scores) == [0, 4]
    scores = np.array([-1.0, -1.0, -1.0, -0.2, -0.5])
    assert segment.decide(3, contested, {}, scores) == [3, 2]


def test_decide_goes_on_to_later_joins_after_one_it_cannot_take():
    contested = [(0, 1, 0.0), (1, 2, 0.0), (2, 3, 0.0)]
    scores = np.array([-1.0, -1.0, -1.0, -1.0, -0.1, -0.2, -0.3])   # surest first: (0,1), then (1,2) is blocked
    assert segment.decide(4, contested, {}, scores) == [4, 6]


def test_decide_reads_a_wide_piece_as_two_when_both_halves_read_at_least_as_surely():
    cuts = {1: [(3, 4)], 2: [(5, 6)]}
    scores = np.array([-0.1, -3.0, -0.2, -0.5, -0.4, -0.3, -0.2])   # groups 0-2, halves 3-4, 5-6
    assert segment.decide(3, [], cuts, scores) == [0, 3, 4, 2]
    scores[5] = -0.2               # the weaker half exactly as sure as the whole: the width says two
    assert segment.decide(3, [], cuts, scores) == [0, 3, 4, 5, 6]
    scores[4] = -3.5
    assert segment.decide(3, [], cuts, scores) == [0, 1, 5, 6]


def test_decide_joins_and_cuts_in_one_number():
    contested = [(0, 1, 0.0)]
    cuts = {2: [(5, 6)], 3: [(7, 8)]}
    scores = np.array([-1.0, -1.0, -3.0, -3.0, -0.5, -0.1, -0.1, -0.2, -0.2])  # groups, joined, halves
    assert segment.decide(4, contested, cuts, scores) == [4, 5, 6, 7, 8]


def test_decide_takes_the_cut_whose_weaker_half_is_surest():
    cuts = {0: [(2, 3), (4, 5), (6, 7)]}
    scores = np.array([-1.0, -0.1, -0.9, -0.1, -0.3, -0.4, -0.05, -0.6])  # groups, then the ways' halves
    assert segment.decide(2, [], cuts, scores) == [4, 5, 1]
    scores[6:8] = [-0.4, -0.3]                          # as sure as the second: the first of equals
    assert segment.decide(2, [], cuts, scores) == [4, 5, 1]
    scores[0] = -0.39                                   # the whole surer than the best cut: kept whole
    assert segment.decide(2, [], cuts, scores) == [0, 1]
