"""Drawings that are not digits, made up: what people put on a digit pad besides digits.

A lone click (a dot), a tick, a straight stroke, a scribble, a crossed circle, a
polygon. Pen letters cover writing; these cover doodles. Each generator returns
pen strokes in the pen data's convention (integer points, y down, longer side
of the box 1000) plus the canvas fraction a person would draw it at, so they go
through `tools.pendata.draw` like real pen samples.
"""
import numpy as np


def _box(points):
    """Scale a list of (n, 2) arrays so the longer side of their box is 1000."""
    allpts = np.vstack(points)
    low = allpts.min(axis=0)
    extent = max(float((allpts.max(axis=0) - low).max()), 1e-6)
    return [np.rint((p - low) * (1000.0 / extent)).astype(int).tolist() for p in points]


def dot(rng):
    """One click, or a few taps close together (a stray mark)."""
    count = rng.choice([1, 1, 1, 2, 3])
    taps = [rng.normal(0, 1, (1, 2)) for _ in range(count)]
    if count == 1:
        return [[[0, 0]]], rng.uniform(0.0, 0.08)
    return _box(taps), rng.uniform(0.05, 0.25)


def tick(rng):
    """A short stroke or a check mark, small, anywhere."""
    if rng.random() < 0.5:
        a = rng.uniform(0, np.pi)
        stroke = np.array([[0, 0], [np.cos(a), np.sin(a)]])
    else:
        stroke = np.array([[0, 0.5], [0.35, 1.0], [1.0, 0.0]]) * [1, rng.uniform(0.6, 1.4)]
    return _box([stroke]), rng.uniform(0.05, 0.22)


def line(rng):
    """A straight stroke that no one writes as a 1: within 35 degrees of horizontal."""
    a = np.deg2rad(rng.uniform(-35, 35))
    n = 12
    t = np.linspace(0, 1, n)[:, None]
    stroke = t * [np.cos(a), np.sin(a)] + rng.normal(0, 0.004, (n, 2))
    return _box([stroke]), rng.uniform(0.2, 0.9)


def scribble(rng):
    """A random walk with momentum: a doodle, a crossed-out mess.

    Long and tangled on purpose: a short smooth walk can trace a 2, 3 or 5
    and would teach the network to refuse real digits.
    """
    strokes = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        n = int(rng.integers(40, 90))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 1.2, n))
        steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * rng.uniform(0.5, 1.5, (n, 1))
        strokes.append(np.cumsum(steps, axis=0) + rng.normal(0, 3, 2))
    return _box(strokes), rng.uniform(0.3, 0.9)


def _ellipse(rng, n=36):
    a = np.linspace(0, 2 * np.pi, n) + rng.uniform(0, 2 * np.pi)
    return np.stack([np.cos(a) * rng.uniform(0.8, 1.2), np.sin(a)], axis=1) + rng.normal(0, 0.02, (n, 2))


def crossed_circle(rng):
    """A circle with a cross or an x through it (a target, a 'no' sign)."""
    ring = _ellipse(rng)
    r = 1.1 if rng.random() < 0.5 else 0.75
    a = rng.choice([0.0, np.pi / 4]) + rng.normal(0, 0.1)
    bars = [np.array([[-np.cos(b), -np.sin(b)], [np.cos(b), np.sin(b)]]) * r for b in (a, a + np.pi / 2)]
    return _box([ring, *bars]), rng.uniform(0.3, 0.9)


def polygon(rng):
    """A triangle, square or pentagon, or a five-pointed star, closed, in one stroke."""
    if rng.random() < 0.3:
        angles = np.arange(6) * (4 * np.pi / 5)
    else:
        sides = int(rng.choice([3, 4, 5]))
        angles = np.arange(sides + 1) * (2 * np.pi / sides)
    angles = angles + rng.uniform(0, 2 * np.pi)
    stroke = np.stack([np.cos(angles), np.sin(angles)], axis=1) + rng.normal(0, 0.03, (len(angles), 2))
    return _box([stroke]), rng.uniform(0.3, 0.9)


def hatch(rng):
    """Back-and-forth strokes filling an area (shading, crossing out)."""
    n = int(rng.integers(4, 10))
    xs = np.repeat(np.arange(n), 2)[:, None] * rng.uniform(0.15, 0.3)
    ys = np.tile([0.0, 1.0], n)[:, None]
    stroke = np.hstack([xs, ys]) + rng.normal(0, 0.04, (2 * n, 2))
    if rng.random() < 0.5:
        stroke = stroke[:, ::-1]
    return _box([stroke]), rng.uniform(0.3, 0.9)


def chevron(rng):
    """A '>' or '<': two straight arms meeting at a point, in one stroke or two.

    The training institutions wrote 23 of them; a clean '>' drawn on the page
    was read as a 7 at 98.7%. Each arm leaves the axis at 30-55 degrees and
    the whole turns at most 5, so the upper arm never lies flat like a 7's bar
    (a 7 is a bar, then a diagonal) nor stands upright like a bent 1 or a ')'.
    """
    half = np.deg2rad(rng.uniform(30, 55))
    upper, lower = rng.uniform(0.75, 1.25, 2)
    tip = np.array([0.0, 0.0])
    ends = [-upper * np.array([np.cos(half), np.sin(half)]), -lower * np.array([np.cos(half), -np.sin(half)])]
    turn = np.deg2rad(rng.uniform(-5, 5))
    rotate = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    ends = [e @ rotate.T for e in ends]
    if rng.random() < 0.5:  # '<': the same, mirrored
        ends = [e * [-1, 1] for e in ends]
    n = 8
    t = np.linspace(0, 1, n)[:, None]
    arms = [e + t * (tip - e) + rng.normal(0, 0.01, (n, 2)) for e in ends]
    if rng.random() < 0.7:  # one stroke: down the upper arm to the tip, back out the lower
        strokes = [np.vstack([arms[0], arms[1][::-1][1:]])]
    else:
        strokes = arms
    return _box(strokes), rng.uniform(0.2, 0.8)


GENERATORS = {"dot": dot, "tick": tick, "line": line, "scribble": scribble,
              "crossed_circle": crossed_circle, "polygon": polygon, "hatch": hatch}
# Drawn only when asked for by name (pen_dataset --shape-kinds): the doodle
# sets above, and the shipped model's training and calibration files made
# from them, stay as they were.
EXTRA_GENERATORS = {"chevron": chevron}
ALL_GENERATORS = {**GENERATORS, **EXTRA_GENERATORS}
