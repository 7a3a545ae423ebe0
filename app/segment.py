"""Read a whole number: split the ink into digits, left to right, and classify them.

The ink is found once, exactly as for a single digit (`preprocess.ink_map` and
`clean_ink`: polarity, alpha, noise and EXIF handled alike). It is cut into
connected components; a component is rarely a digit by itself only when a
person lifts the pen inside one (the bar of a 4 or a 5, a 7's crossbar), and
those pieces sit in the same columns, while neighbouring digits sit side by
side. So pieces that share most of their columns are joined; when two tall
pieces do (a 1 under the bar of a 7, or the two strokes of a 4), the model
decides which reading it believes more. Each digit's share of the cleaned ink
is then normalised exactly as a single digit is (`clean_ink_to_mnist`), and all
candidates go through the network in one batch.

Work is bounded for any input: the image is reduced to at most
NUMBER_WORK_SIZE pixels, labelling is linear in them, and a picture with more
separate marks than MAX_PIECES is refused before any per-piece work.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .preprocess import MAX_WORK_SIDE, BlankImageError, clean_ink, clean_ink_to_mnist, ink_map, reduce_factor

# The documented longest number: more digits than this are refused (422).
MAX_DIGITS = 20
# Width and height the ink is worked at. The height is what /predict allows, so an
# image at most four times wider than tall is worked at the same scale as there
# (a lone digit comes out identical); the width leaves room for 20 digits.
NUMBER_WORK_SIZE = (4 * MAX_WORK_SIDE, MAX_WORK_SIDE)
# Pieces with less ink than this fraction of the largest piece are specks: they are
# not counted towards MAX_PIECES and never become digits. A 5's bar holds about
# 30% of the ink of its body; a lone noise dot far less than 1%.
MIN_AREA_FRACTION = 0.01
# More separate marks than this (after specks) is not a number: refused before
# any per-piece work. Generous: a digit written with broken strokes gives 3-4.
MAX_PIECES = 8 * MAX_DIGITS
# Sizes relative to the line height (the typical height of the tall pieces):
# below FRAGMENT_SIZE a piece is part of a digit if it shares columns with one
# (a bar, a crossbar); otherwise it is a small digit of its own when at least
# twice SPECK_SIZE tall, and a stray mark, dropped, when shorter; at and above
# FRAGMENT_SIZE a piece is as tall as a digit.
SPECK_SIZE = 0.2
FRAGMENT_SIZE = 0.6
# Two pieces "share columns" when their horizontal overlap is at least this
# fraction of the narrower one's width. Neighbouring digits whose boxes overlap
# by up to 0.15 of the height (a leaning 1, a 7's bar reaching over) stay below
# it unless one of them is very narrow; those cases go to the model.
SHARED_COLUMNS = 0.5
# Two tall pieces sharing columns are joined unless reading them apart is this
# much more believable (log-probability margin) than reading them as one digit.
# Joining is the better prior: two-stroke 4s and 5s are common, a 1 entirely
# under its neighbour's bar is not.
SEPARATE_MARGIN = 1.0
# A narrow tall piece (an upright stroke: narrower than STROKE_WIDTH of the line
# height) within NEAR_GAP of its neighbour may be the upright of a 4 whose bar
# stopped short of it, or a 1 written close: the model decides, but here
# reading them apart is the prior (a close "11" is common), so joining needs
# a log-probability gain of NEAR_MARGIN. The joined piece must still be no
# wider than MAX_JOINED_WIDTH of the line height. (Replaying 300 pen-digit
# numbers of the tuning institutions, margins 0.1-0.5 read the same within one
# number; 0 joins neighbours wrongly: overlap 92% -> 85%. A "17" or "41" joined
# reads as a confident 7 or 4, so the margin must stay above 0.)
STROKE_WIDTH = 0.3
NEAR_GAP = 0.2
NEAR_MARGIN = 0.1
MAX_JOINED_WIDTH = 1.0
# A short piece that shares no columns (a small digit of its own, above) within
# LOOSE_GAP of a tall neighbour may be a stroke of it drawn apart: the hook of
# a 4 whose upright stands off to its right, which the model alone reads as a
# 6 or 2 that is "not a digit". The pair goes to the model like a narrow
# upright's (reading apart the prior, NEAR_MARGIN) when together it is no
# wider than TOUCHING_ASPECT of the line. (Pen numbers, 150 per spacing, seed
# 1: the held-out institution app's wrong digit counts 1.8% -> 0.2% of its
# numbers, exact 91.8% -> 93.3%; gmd, the other institutions and touching
# digits read the same to the number.)
LOOSE_GAP = 0.5
# A piece this much wider than tall is two touching digits (a wide 0 is ~0.9);
# it is offered to the model cut at the emptiest column of its middle half and
# at CUT_FRACTIONS of its width (up to 8 more candidates per such piece; at most
# 2 * MAX_DIGITS groups reach this point, so the batch stays bounded).
TOUCHING_ASPECT = 1.25
CUT_FRACTIONS = (0.4, 0.5, 0.6)


# Zero border kept around each digit's ink (see group_ink).
CROP_MARGIN = 2


class TooManyDigits(ValueError):
    """More digits or marks than a number may hold; the message says how many."""


@dataclass
class Group:
    """One candidate digit: the labels of its pieces and its box in work pixels."""

    labels: tuple
    box: tuple  # left, top, right, bottom (exclusive)
    cut: tuple = None  # (x_from, x_to) columns when a cut of a touching piece

    @property
    def width(self):
        return self.box[2] - self.box[0]

    @property
    def height(self):
        return self.box[3] - self.box[1]


@dataclass
class Digit:
    """A digit as read: its classification, its box in image pixels, its 28x28."""

    digit: int
    confidence: float
    probabilities: np.ndarray
    is_digit: bool
    not_digit: float
    box: list
    pixels: np.ndarray


@dataclass
class Reading:
    """A number as read; `confidence` is the chance that every digit is right."""

    digits: list = field(default_factory=list)

    @property
    def number(self):
        return "".join(str(d.digit) for d in self.digits)

    @property
    def confidence(self):
        return float(np.prod([d.confidence for d in self.digits])) if self.digits else 0.0


def read_number(image, model):
    """PIL image -> Reading. Raises BlankImageError (no ink) or TooManyDigits."""
    upright = upright_size(image)
    ink = ink_map(image, NUMBER_WORK_SIZE)
    factor = reduce_factor(upright, NUMBER_WORK_SIZE)
    cleaned = clean_ink(ink)
    labels, pieces = find_pieces(cleaned)
    height = line_height(pieces)
    groups, contested, wide = group_pieces(pieces, height)
    fewest = len(groups) - most_joins(contested)  # cuts only add digits
    if fewest > MAX_DIGITS:  # refused before any per-candidate work
        raise too_many(fewest)

    candidates = list(groups) + [join(groups[i], groups[j]) for i, j, _ in contested]
    cuts = {}  # wide group -> the candidate indices of each way to cut it, (left, right)
    for index in wide:
        for halves in cut_touching(cleaned, labels, groups[index], FRAGMENT_SIZE * height):
            cuts.setdefault(index, []).append((len(candidates), len(candidates) + 1))
            candidates += halves
    pixels = np.stack([clean_ink_to_mnist(group_ink(cleaned, labels, g)) for g in candidates])
    prediction = model.predict(pixels)
    scores = np.log(np.maximum(prediction.probabilities.max(axis=1), 1e-9))
    scores = np.where(prediction.is_digit, scores, scores - 2.0)

    chosen = decide(len(groups), contested, cuts, scores)
    if len(chosen) > MAX_DIGITS:
        raise too_many(len(chosen))
    chosen.sort(key=lambda index: center_x(candidates[index]))
    reading = Reading()
    for index in chosen:
        group = candidates[index]
        probabilities = prediction.probabilities[index].astype(np.float64)
        probabilities /= probabilities.sum()
        digit = int(np.argmax(probabilities))
        reading.digits.append(Digit(
            digit=digit, confidence=float(probabilities[digit]), probabilities=probabilities,
            is_digit=bool(prediction.is_digit[index]), not_digit=float(prediction.not_digit[index]),
            box=image_box(group.box, factor, upright), pixels=pixels[index]))
    return reading


def most_joins(contested):
    """How many contested pairs can be joined at once. A group joins at most
    once and the pairs are neighbours in left-to-right order, so taking each
    pair whose left group is still free, left to right, joins the most."""
    joins, taken_until = 0, -1
    for i, j, _ in contested:
        if i > taken_until:
            joins, taken_until = joins + 1, j
    return joins


def too_many(count):
    return TooManyDigits(f"The image holds {count} separate digits or marks; at most {MAX_DIGITS} "
                         f"digits are read at once. Send a shorter number.")


def upright_size(image):
    """(width, height) after the EXIF rotation that ink_map applies."""
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block is ignored by ink_map too
        return width, height
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def image_box(box, factor, size):
    """A box in work pixels -> [left, top, right, bottom] in the upright image's pixels."""
    left, top, right, bottom = box
    width, height = size
    return [int(min(left * factor, width)), int(min(top * factor, height)),
            int(min(right * factor, width)), int(min(bottom * factor, height))]


# --------------------------------------------------------------------------- pieces

def find_pieces(cleaned):
    """Label the ink's connected components; return (labels, [Group per piece]).

    Only pieces above the speck floor are kept, relabelled 1..k, so that all
    later work is per piece and the count is checked before any of it.
    """
    labels, count = ndimage.label(cleaned > 0, structure=np.ones((3, 3), bool))
    if count == 0:
        raise BlankImageError("The image holds no ink: draw or upload a number.")
    areas = np.bincount(labels.ravel(), weights=cleaned.ravel(), minlength=count + 1)
    areas[0] = 0.0
    keep = areas >= MIN_AREA_FRACTION * areas.max()
    kept = int(np.count_nonzero(keep))
    if kept > MAX_PIECES:
        raise TooManyDigits(f"The image holds {kept} separate marks; a number of at most "
                            f"{MAX_DIGITS} digits has far fewer. Send a shorter number or a cleaner image.")
    relabel = np.zeros(count + 1, dtype=np.int32)
    relabel[keep] = np.arange(1, kept + 1, dtype=np.int32)
    labels = relabel[labels]
    pieces = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels, kept), start=1):
        pieces.append(Group(labels=(index,), box=(cols.start, rows.start, cols.stop, rows.stop)))
    return labels, pieces


def line_height(pieces):
    """The typical height of a digit here: median height of the tall pieces."""
    heights = np.array([p.height for p in pieces], dtype=np.float64)
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def shared_columns(a, b):
    """Horizontal overlap of two boxes as a fraction of the narrower one's width."""
    overlap = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    return max(overlap, 0) / max(1, min(a.width, b.width))


def join(a, b):
    return Group(labels=a.labels + b.labels,
                 box=(min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
                      max(a.box[2], b.box[2]), max(a.box[3], b.box[3])))


def center_x(group):
    return (group.box[0] + group.box[2]) / 2.0


def group_pieces(pieces, height=None):
    """Pieces -> (groups, contested pairs, indices of groups too wide for one digit).

    Fragments (short pieces) join the tall piece they share the most columns
    with; specks that join nothing are dropped. Tall pieces that share columns
    or stand close, and a short piece close to a tall one, are "contested": the
    model decides between one digit and two. `height` is `line_height(pieces)`,
    passed by read_number, which needs it again for the cuts.
    """
    if height is None:
        height = line_height(pieces)
    tall = [p for p in pieces if p.height >= FRAGMENT_SIZE * height]
    short = [p for p in pieces if p.height < FRAGMENT_SIZE * height]
    tall.sort(key=center_x)

    # Tall pieces that share columns with a tall neighbour form chains; pairs of
    # neighbours in a chain are contested (decided by the model later).
    groups = list(tall)
    # Short pieces: join the group (tall or short) they share most columns with,
    # largest first, so a 5's bar meets the body before a speck meets the bar.
    short.sort(key=lambda p: -max(p.height, p.width))
    loose = []
    for piece in short:
        best, best_share = None, 0.0
        for index, group in enumerate(groups):
            share = shared_columns(piece, group)
            if share > best_share:
                best, best_share = index, share
        if best is not None and best_share >= SHARED_COLUMNS:
            groups[best] = join(groups[best], piece)
        elif piece.height >= 2 * SPECK_SIZE * height:
            loose.append(piece)  # a small digit of its own (mixed sizes)
        # else: a stray mark, dropped
    groups += loose
    groups.sort(key=center_x)
    contested = []
    for i in range(len(groups) - 1):
        a, b = groups[i], groups[i + 1]
        if min(a.height, b.height) < FRAGMENT_SIZE * height:
            if (max(a.height, b.height) >= FRAGMENT_SIZE * height
                    and b.box[0] - a.box[2] < LOOSE_GAP * height
                    and join(a, b).width <= TOUCHING_ASPECT * height):
                contested.append((i, i + 1, -NEAR_MARGIN))
            continue
        if shared_columns(a, b) >= SHARED_COLUMNS:
            contested.append((i, i + 1, SEPARATE_MARGIN))
        elif (min(a.width, b.width) < STROKE_WIDTH * height
              and b.box[0] - a.box[2] < NEAR_GAP * height
              and join(a, b).width <= MAX_JOINED_WIDTH * height):
            contested.append((i, i + 1, -NEAR_MARGIN))
    wide = [i for i, g in enumerate(groups)
            if g.width > TOUCHING_ASPECT * max(g.height, height) and len(g.labels) == 1]
    return groups, contested, wide


def group_ink(cleaned, labels, group):
    """The cleaned ink of this group's pieces only, cropped to its box.

    The crop keeps a margin of CROP_MARGIN px (inside the image) so that the
    single-digit normalisation, which finds the box on a 3x3 average that
    reaches one pixel past the ink, sees exactly what it sees on a whole image.
    """
    height, width = labels.shape
    left, top, right, bottom = group.box
    left, top = max(0, left - CROP_MARGIN), max(0, top - CROP_MARGIN)
    right, bottom = min(width, right + CROP_MARGIN), min(height, bottom + CROP_MARGIN)
    window = labels[top:bottom, left:right]
    ink = np.where(np.isin(window, group.labels), cleaned[top:bottom, left:right], 0.0)
    if group.cut is not None:
        ink[:, :group.cut[0] - left] = 0.0
        ink[:, group.cut[1] - left:] = 0.0
    return ink.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- touching digits

def cut_touching(cleaned, labels, group, min_height):
    """Ways to cut a piece too wide for one digit in two: [[left, right], ...].

    Candidate columns: the emptiest column of the piece's middle half (two
    digits touching by a corner) and CUT_FRACTIONS of its width (two loops
    touching side by side put the most ink, not the least, where they meet).
    The halves keep only their own rows; the model picks among the cuts. A
    cut leaving a half shorter than `min_height` (read_number passes a
    fragment's height, FRAGMENT_SIZE of the line) is left out: such a half is
    the tip of a crossed zero's slash or a tail, which the model reads as a
    sure 1 (held-out pen numbers: a crossed 0 read "01").
    """
    left, top, right, bottom = group.box
    window_left, window_top = max(0, left - CROP_MARGIN), max(0, top - CROP_MARGIN)
    ink = group_ink(cleaned, labels, group)
    columns = ink[:, left - window_left:right - window_left].sum(axis=0)
    width = columns.size
    low, high = width // 4, max(width // 4 + 1, (3 * width) // 4)
    emptiest = low + int(np.argmin(columns[low:high]))
    cuts = []
    for at in dict.fromkeys([emptiest] + [int(round(f * width)) for f in CUT_FRACTIONS]):
        halves = []
        for start, stop in ((left, left + at), (left + at, right)):
            part = ink[:, start - window_left:stop - window_left]
            if stop - start < 2 or not part.any():
                break
            rows = np.flatnonzero(part.max(axis=1) > 0)
            if rows[-1] + 1 - rows[0] < min_height:
                break
            halves.append(Group(labels=group.labels,
                                box=(start, window_top + int(rows[0]), stop, window_top + int(rows[-1]) + 1),
                                cut=(start, stop)))
        if len(halves) == 2:
            cuts.append(halves)
    return cuts


def decide(base, contested, cuts, scores):
    """Candidate indices of the digits read, by comparing the model's beliefs.

    Candidates 0..base-1 are the groups, base + k joins contested pair k, and
    cuts maps a wide group to its ways of being cut, each a pair of candidates.
    """
    merged_into = {}
    # Contested neighbours, the surest joins first; a group joins at most once.
    def gain(k):
        i, j, margin = contested[k]
        return scores[base + k] + margin - scores[i] - scores[j]

    taken = set()
    for k in sorted(range(len(contested)), key=gain, reverse=True):
        i, j, _ = contested[k]
        if i in taken or j in taken:
            continue
        if gain(k) >= 0:
            taken.update((i, j))
            merged_into[i] = merged_into[j] = base + k
    chosen = []
    for i in range(base):
        if i in merged_into:
            if merged_into[i] not in chosen:
                chosen.append(merged_into[i])
        elif i in cuts:
            best = max(cuts[i], key=lambda pair: min(scores[h] for h in pair))  # the first among equals
            if min(scores[h] for h in best) >= scores[i]:  # a tie: the width says two
                chosen += best
            else:
                chosen.append(i)
        else:
            chosen.append(i)
    return chosen
