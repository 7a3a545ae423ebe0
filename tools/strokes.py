"""Digits as people hand them in: MNIST redrawn on a 280x280 browser canvas.

The model only ever saw 28x28 MNIST, but users draw with a pen of fixed width on
a big canvas, anywhere, any size, and the canvas may come back transparent or
inverted. To measure the whole pipeline on that kind of input we make it:

* `redraw_raster`: the MNIST digit itself, enlarged at a random size/position;
* `redraw_skeleton`: the digit thinned to its centre line (Zhang-Suen) and
  traced again with a round brush of uniform width, like a pen on a screen;
* `font_paths`: hand-written-style polylines for 0-9 with random affine
  jitter, in canvas pixels, so a browser test can replay them as mouse strokes.

Renders are anti-aliased by supersampling and encoded as the RGBA PNG a canvas
`toDataURL()` delivers; the transparent variant is alpha = ink with RGB all 0.
"""
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CANVAS = 280
SUPERSAMPLE = 3


@dataclass(frozen=True)
class Style:
    """How one judged variant is drawn: brush, digit size, placement, colours."""
    brush: tuple          # (low, high) brush diameter in canvas px
    size: tuple           # (low, high) digit height as a fraction of the canvas
    corner: bool = False  # pushed towards a random corner instead of near the centre
    ink: str = "black"    # "black" on white, "white" on black, "transparent" (alpha)


STYLES = {
    "default": Style(brush=(18, 20), size=(0.55, 0.85)),
    "small": Style(brush=(18, 20), size=(0.25, 0.35)),
    "offcenter": Style(brush=(18, 20), size=(0.35, 0.55), corner=True),
    "thin": Style(brush=(6, 6), size=(0.55, 0.85)),
    "thick": Style(brush=(30, 30), size=(0.55, 0.85)),
    "transparent": Style(brush=(18, 20), size=(0.55, 0.85), ink="transparent"),
    "inverted": Style(brush=(18, 20), size=(0.55, 0.85), ink="white"),
}
VARIANTS = tuple(STYLES)


# --------------------------------------------------------------------------- thinning

def zhang_suen(mask):
    """Thin a boolean mask to 1-px centre lines (Zhang & Suen 1984), vectorized.

    Each sub-iteration evaluates the neighbourhood rules on the whole image at
    once, so a 112x112 digit thins in a handful of NumPy passes.
    """
    img = np.pad(np.asarray(mask, dtype=bool), 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            p2, p3, p4 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:]
            p5, p6, p7 = img[2:, 2:], img[2:, 1:-1], img[2:, :-2]
            p8, p9 = img[1:-1, :-2], img[:-2, :-2]
            ring = (p2, p3, p4, p5, p6, p7, p8, p9, p2)
            neighbours = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9
            transitions = sum(((a == 0) & (b == 1)).astype(np.uint8) for a, b in zip(ring, ring[1:]))
            if step == 0:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (c == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def skeleton_segments(digit28, upscale=4, threshold=0.4):
    """Centre-line segments of a 28x28 MNIST digit, as (M, 2, 2) (x, y) in 28-px units.

    The digit is enlarged before thinning so the traced line is smooth, not a
    staircase of 28x28 pixels.
    """
    size = 28 * upscale
    big = np.asarray(Image.fromarray(np.asarray(digit28, dtype=np.uint8)).resize((size, size), Image.BICUBIC))
    skeleton = zhang_suen(big > threshold * 255)
    ys, xs = np.nonzero(skeleton)
    if xs.size == 0:
        return np.zeros((0, 2, 2), dtype=np.float32)
    segments = []
    padded = np.pad(skeleton, 1)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        linked = padded[1 + ys + dy, 1 + xs + dx]
        a = np.stack([xs[linked], ys[linked]], axis=1)
        b = a + np.array([dx, dy])
        segments.append(np.stack([a, b], axis=1))
    lonely = np.stack([xs, ys], axis=1)  # zero-length segments keep isolated dots
    segments.append(np.stack([lonely, lonely], axis=1))
    return ((np.concatenate(segments).astype(np.float32) + 0.5) / upscale).astype(np.float32)


# --------------------------------------------------------------------------- placement

def _placement(extent_w, extent_h, style, rng, brush):
    """Scale and offset putting a shape of that extent on the canvas as `style` says."""
    height = rng.uniform(*style.size) * CANVAS
    scale = max(height - brush, 4.0) / max(extent_h, extent_w * 0.8, 1e-6)
    w, h = extent_w * scale + brush, extent_h * scale + brush
    free_x, free_y = max(CANVAS - w, 0.0), max(CANVAS - h, 0.0)
    if style.corner:
        fx = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0)
        fy = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0)
    else:
        fx, fy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    return scale, free_x * fx + brush / 2, free_y * fy + brush / 2


def place_segments(segments, style, rng, brush):
    """Segments in 28-px units -> canvas pixels, sized and positioned per `style`."""
    points = segments.reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    scale, left, top = _placement(*(high - low), style, rng, brush)
    return (segments - low) * scale + np.array([left, top], dtype=np.float32)


# --------------------------------------------------------------------------- rendering

def render_segments(segments, brush, ink="black", size=(CANVAS, CANVAS)):
    """Stroke segments (canvas px) with a round brush -> RGBA uint8 (280, 280, 4).

    `size` (width, height) draws on another canvas, e.g. a wide one for numbers;
    ink="coverage" returns the float coverage itself.
    """
    s = SUPERSAMPLE
    layer = Image.new("L", (size[0] * s, size[1] * s), 0)
    draw = ImageDraw.Draw(layer)
    r = brush * s / 2.0
    segments = np.asarray(segments, dtype=np.float64) * s
    width = max(1, int(round(brush * s)))
    for (x0, y0), (x1, y1) in segments[np.any(segments[:, 0] != segments[:, 1], axis=1)]:
        draw.line((x0, y0, x1, y1), fill=255, width=width)
    for x, y in np.unique(segments.reshape(-1, 2), axis=0):  # round caps and joints
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    coverage = np.asarray(layer.resize(tuple(size), Image.BOX), dtype=np.float32) / 255.0
    return coverage if ink == "coverage" else coverage_to_rgba(coverage, ink)


def coverage_to_rgba(coverage, ink):
    """Ink coverage in [0, 1] -> what a canvas holds after drawing with that ink."""
    alpha = np.full(coverage.shape, 255, dtype=np.uint8)
    if ink == "black":
        level = np.rint(255 * (1 - coverage)).astype(np.uint8)
    elif ink == "white":
        level = np.rint(255 * coverage).astype(np.uint8)
    elif ink == "transparent":
        level = np.zeros(coverage.shape, dtype=np.uint8)
        alpha = np.rint(255 * coverage).astype(np.uint8)
    else:
        raise ValueError(f"unknown ink {ink!r}")
    return np.dstack([level, level, level, alpha])


def png_bytes(rgba):
    """RGBA array -> PNG bytes, as `canvas.toDataURL('image/png')` would carry."""
    buffer = io.BytesIO()
    # fastest zlib level: the decoded pixels are the same at any level
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def redraw_skeleton(digit28, variant, rng):
    """An MNIST digit traced again with a uniform round brush -> RGBA canvas."""
    style = STYLES[variant]
    brush = rng.uniform(*style.brush)
    segments = skeleton_segments(digit28)
    if len(segments) == 0:
        raise ValueError("digit has no ink to trace")
    return render_segments(place_segments(segments, style, rng, brush), brush, style.ink)


def redraw_raster(digit28, variant, rng):
    """The MNIST digit itself enlarged onto the canvas -> RGBA canvas.

    Thin and thick variants erode/dilate the enlarged digit so its strokes end
    up about as wide as the brush of that variant would make them.
    """
    style = STYLES[variant]
    digit = np.asarray(digit28, dtype=np.uint8)
    rows = np.flatnonzero(digit.max(axis=1))
    cols = np.flatnonzero(digit.max(axis=0))
    crop = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    height = rng.uniform(*style.size) * CANVAS
    scale = height / max(h, w * 0.8)
    big = Image.fromarray(crop).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    nominal = 2.5 * scale  # an MNIST stroke is about 2.5 px wide in its 28x28
    brush = float(np.mean(style.brush))
    if variant in ("thin", "thick"):
        steps = int(round(abs(brush - nominal) / 2))
        rank = ImageFilter.MinFilter(3) if brush < nominal else ImageFilter.MaxFilter(3)
        start = np.count_nonzero(np.asarray(big) > 127)
        for _ in range(min(steps, 12)):
            eroded = big.filter(rank)
            if brush < nominal and np.count_nonzero(np.asarray(eroded) > 127) < 0.5 * start:
                break  # thinner would break strokes apart: not what a thin pen does
            big = eroded
    bw, bh = big.size
    if bw > CANVAS or bh > CANVAS:
        big.thumbnail((CANVAS, CANVAS), Image.BILINEAR)
        bw, bh = big.size
    if style.corner:
        fx = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0)
        fy = rng.uniform(0.0, 0.15) if rng.random() < 0.5 else rng.uniform(0.85, 1.0)
    else:
        fx, fy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
    coverage = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    left, top = int((CANVAS - bw) * fx), int((CANVAS - bh) * fy)
    coverage[top:top + bh, left:left + bw] = np.asarray(big, dtype=np.float32) / 255.0
    return coverage_to_rgba(coverage, style.ink)


# --------------------------------------------------------------------------- stroke font

# Each digit is a list of strokes; each stroke a list of (x, y) control points in a
# unit box (y down), in the order and direction a person usually draws them.
FONT = {
    0: [[(0.5, 0.0), (0.2, 0.12), (0.05, 0.5), (0.2, 0.9), (0.5, 1.0), (0.8, 0.88),
         (0.95, 0.5), (0.8, 0.1), (0.5, 0.0)]],
    1: [[(0.35, 0.15), (0.55, 0.0), (0.55, 1.0)]],
    2: [[(0.12, 0.25), (0.3, 0.04), (0.6, 0.0), (0.85, 0.2), (0.75, 0.5), (0.4, 0.78),
         (0.08, 1.0), (0.5, 0.97), (0.92, 0.98)]],
    3: [[(0.15, 0.12), (0.5, 0.0), (0.82, 0.15), (0.78, 0.35), (0.45, 0.48), (0.8, 0.6),
         (0.88, 0.82), (0.55, 1.0), (0.12, 0.88)]],
    4: [[(0.3, 0.0), (0.08, 0.62), (0.92, 0.62)], [(0.7, 0.1), (0.7, 1.0)]],
    5: [[(0.25, 0.02), (0.18, 0.45), (0.5, 0.38), (0.82, 0.55), (0.82, 0.85), (0.5, 1.0),
         (0.12, 0.9)], [(0.25, 0.02), (0.85, 0.02)]],
    6: [[(0.75, 0.0), (0.4, 0.25), (0.18, 0.6), (0.25, 0.92), (0.55, 1.0), (0.8, 0.82),
         (0.72, 0.58), (0.45, 0.52), (0.2, 0.7)]],
    7: [[(0.08, 0.02), (0.92, 0.02), (0.6, 0.5), (0.38, 1.0)]],
    8: [[(0.78, 0.15), (0.5, 0.0), (0.2, 0.15), (0.3, 0.38), (0.7, 0.6), (0.82, 0.85),
         (0.5, 1.0), (0.18, 0.85), (0.3, 0.6), (0.7, 0.38), (0.78, 0.15)]],
    9: [[(0.8, 0.25), (0.55, 0.02), (0.22, 0.12), (0.2, 0.38), (0.5, 0.48), (0.8, 0.3),
         (0.8, 0.25), (0.78, 0.65), (0.7, 1.0)]],
}
FONT_WIDTH = 0.62  # handwritten digits are about this much narrower than tall


def _catmull_rom(points, per_segment=8):
    """Smooth curve through the control points (what a hand does between them)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 3:
        t = np.linspace(0, 1, per_segment * max(1, len(p) - 1) + 1)[:, None]
        return p[0] + (p[-1] - p[0]) * t
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    pieces = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        pieces.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                             + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    pieces.append(p[-1:])
    return np.vstack(pieces)


def font_paths(digit, rng=None, variant="default", brush=None):
    """Point lists (one per stroke) for `digit` in canvas pixel coordinates.

    A random affine (slant, rotation, aspect, size, position per the variant's
    style) plus a little hand tremor makes every call a different writer.
    Returns (paths, brush): paths is a list of lists of (x, y) floats.
    """
    rng = rng if rng is not None else np.random.default_rng()
    style = STYLES[variant]
    brush = float(brush if brush is not None else rng.uniform(*style.brush))
    strokes = [_catmull_rom(s) for s in FONT[int(digit)]]
    angle = np.deg2rad(rng.uniform(-8, 8))
    shear = rng.uniform(-0.25, 0.1)
    aspect = FONT_WIDTH * rng.uniform(0.85, 1.15)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ \
        np.array([[aspect, shear], [0.0, 1.0]])
    strokes = [(s - 0.5) @ linear.T + rng.normal(0, 0.006, s.shape) for s in strokes]
    allpts = np.vstack(strokes)
    low, high = allpts.min(axis=0), allpts.max(axis=0)
    scale, left, top = _placement(*(high - low), style, rng, brush)
    origin = np.array([left, top])
    paths = [[(float(x), float(y)) for x, y in (s - low) * scale + origin] for s in strokes]
    return paths, brush


def paths_to_segments(paths):
    """Polylines -> (M, 2, 2) segments for `render_segments`."""
    segments = []
    for path in paths:
        p = np.asarray(path, dtype=np.float32)
        if len(p) == 1:
            p = np.vstack([p, p])
        segments.append(np.stack([p[:-1], p[1:]], axis=1))
    return np.concatenate(segments)


def render_font_digit(digit, variant, rng):
    """A stroke-font digit drawn in a variant's style -> RGBA canvas."""
    paths, brush = font_paths(digit, rng, variant)
    return render_segments(paths_to_segments(paths), brush, STYLES[variant].ink)
