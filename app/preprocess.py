"""Bring whatever a person hands in to the 28x28 digit the model was trained on.

MNIST digits are white ink on black, their ink bounding box scaled (aspect kept,
anti-aliased) so that its longer side is 20 px, then placed in a 28x28 field with
the centre of mass at the centre. A drawing on a 280x280 canvas differs in every
one of those respects (size, position, polarity, alpha, stroke width), and a
plain resize loses a third of the accuracy, so each difference is undone here.

Two entry points share one code path: `preprocess(PIL image)` for one digit,
and `clean_ink` then `clean_ink_to_mnist` for the number reader, which cleans
the whole image once and normalises each digit's share of it.
"""
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageOps

# Inputs larger than this are box-reduced first: bounded work for any upload.
MAX_WORK_SIDE = 512
# Ink must differ from the background by this much (fraction of full scale;
# half of it after 3x3 block averaging, which a 1 px line survives at 1/3):
# faint smudges and uniform grey stay below it.
CONTRAST_FLOOR = 0.10
# Differences below this fraction of the image's own contrast are paper texture,
# JPEG ringing or noise, not ink; above SOLID_FRACTION a pixel is fully inked
# (so noise inside a stroke does not read as stroke edges).
NOISE_FRACTION = 0.25
SOLID_FRACTION = 0.75
# Measured against the background's own noise: the image's contrast must be
# this many standard deviations above it (pure noise peaks near 4), and ink
# pixels at least INK_SIGMAS.
NOISE_SIGMAS = 6.0
INK_SIGMAS = 4.0
# Level, on a 3x3 average of the ink, below which a pixel does not extend the
# bounding box (a lone speck reaches 1/9).
SPECK_LEVEL = 0.15
# Fewer ink pixels than this (after thresholding) is not a drawing.
MIN_INK_PIXELS = 4

MNIST_SIDE = 28
MNIST_BOX = 20
# MNIST puts the centre of mass at pixel index 14 (measured on the test set:
# mean 13.99 in both axes), not at the geometric centre 13.5.
MNIST_CENTER = 14.0

# Stroke width of MNIST digits in units of their 20-px box, measured with
# `stroke_width` on the test set (4x upsampled): 10th percentile 1.85, 25th
# 2.05, median 2.34, 75th 2.72, 90th 3.17. Widths inside the interquartile band
# are left alone; outside it they are brought to the band's edge. (On canvas
# redraws this band scored a little better than the 10-90 band, and the same
# as forcing the median.)
STROKE_BAND = (2.1, 2.7)
# Resolution (longer side) at which strokes are dilated/eroded; high enough for
# fine steps, small enough to cost well under a millisecond.
STROKE_WORK_SIDE = 96
# Filter for the final reduction to 20 px.
RESAMPLE = Image.LANCZOS


# EXIF "Orientation": 1 is upright, 2-8 say how the stored pixels must turn.
ORIENTATION_TAG = 0x0112

BLANK_MESSAGE = "The image holds no ink: draw or upload a digit."


class BlankImageError(ValueError):
    """The image holds no ink: there is nothing to classify."""


def preprocess(image):
    """Any PIL image -> uint8 (28, 28), white ink on black, MNIST-normalised."""
    return _window_to_mnist(_ink_window(image))


# --------------------------------------------------------------------------- decoding

class InkWindow(NamedTuple):
    """Float ink of the part of an image that can hold any, and where it sits.

    Outside the window the ink is exactly zero (the pixels there equal the
    background), so every statistic of the whole image can be taken from the
    window plus the image's size: no float work on untouched canvas. A window
    smaller than the image is only cut when the border ring is uniform, so the
    background noise there is zero too.
    """

    ink: np.ndarray   # float32 (h, w)
    shape: tuple      # (H, W) of the whole image
    top: int = 0
    left: int = 0

    @property
    def whole(self):
        return self.ink.shape == tuple(self.shape)


def ink_map(image, max_size=(MAX_WORK_SIDE, MAX_WORK_SIDE)):
    """PIL image of any mode -> float32 ink in [0, 1] (1 = ink), polarity undone.

    Background is the median of the border ring, ink is how far a pixel is from it
    in (premultiplied gray, alpha): this single rule covers black on white, white
    on black, and ink on a transparent canvas whose RGB is all zero. An image
    larger than `max_size` (width, height) is box-reduced by a whole factor (a
    wide number may need more width than one digit does).
    """
    window = _ink_window(image, max_size)
    if window.whole:
        return window.ink
    full = np.zeros(window.shape, np.float32)
    h, w = window.ink.shape
    full[window.top:window.top + h, window.left:window.left + w] = window.ink
    return full


def _ink_window(image, max_size=(MAX_WORK_SIDE, MAX_WORK_SIDE)):
    """The ink of `image` (see ink_map) on the smallest window that holds all of it.

    The window is found on the decoded 8-bit pixels: with a uniform border ring
    every pixel equal to the ring's value has exactly zero ink, so only the box
    of the others (plus one pixel, which the speck filter looks at) is turned
    into float. A drawn canvas is mostly untouched background: this skips the
    whole-canvas float work that used to be most of a request.
    """
    image = _upright(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        gray = _wide_gray(image, max_size)
        return InkWindow(np.abs(gray - np.median(_ring_values(gray))), gray.shape)
    if _has_alpha(image):
        rgba = _reduce(_as_mode(image, "RGBA"), max_size)
        found = _uniform_ring_box(rgba)
        if found is not None:
            (top, bottom, left, right), ring_key = found
            pixels = np.asarray(rgba.crop((left, top, right, bottom)))
            return _window_ink(pixels, ring_key, (rgba.height, rgba.width), top, left)
        pixels = np.asarray(rgba)
        keys = pixels.view(np.uint32)[..., 0]  # one comparable value per RGBA pixel
    else:
        if mode not in ("L", "RGB"):
            image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1, P without transparency
        pixels = keys = np.asarray(_reduce(_as_mode(image, "L"), max_size))
    shape = keys.shape
    ring_keys = _ring_values(keys)
    top, bottom, left, right = 0, shape[0], 0, shape[1]
    if ring_keys.size and np.all(ring_keys == ring_keys[0]):
        # a uniform border: its median is its one value, and the ink is the box of the rest
        ring_keys = ring_keys[:1]
        rows = np.flatnonzero(np.any(keys != ring_keys[0], axis=1))
        if rows.size == 0:  # uniform: no ink anywhere
            return InkWindow(np.zeros((0, 0), np.float32), shape)
        cols = np.flatnonzero(np.any(keys[rows[0]:rows[-1] + 1] != ring_keys[0], axis=0))
        top, bottom = max(0, rows[0] - 1), min(shape[0], rows[-1] + 2)
        left, right = max(0, cols[0] - 1), min(shape[1], cols[-1] + 2)
    return _window_ink(pixels[top:bottom, left:right], ring_keys, shape, top, left)


def _window_ink(window, ring_keys, shape, top, left):
    """InkWindow of the 8-bit pixels `window` (L, or RGBA) of an image of `shape`,
    against the background in `ring_keys` (the border ring's pixels as L levels
    or RGBA packed in uint32; one value when the ring is uniform)."""
    if window.ndim == 2:
        gray, background = _levels(window), float(_median(_levels(ring_keys)))
        return InkWindow(_distance(gray, np.float32(background)), shape, top, left)
    ink = _one_channel_ink(window, ring_keys)
    if ink is not None:
        return InkWindow(ink, shape, top, left)
    gray, alpha = _gray_alpha8(window)
    ring_gray, ring_alpha = _gray_alpha8(ring_keys.view(np.uint8).reshape(-1, 4))
    if min(alpha.min(initial=1.0), ring_alpha.min(initial=1.0)) >= 1.0:  # opaque after all
        background = float(_median(ring_gray))
        return InkWindow(_distance(gray, np.float32(background)), shape, top, left)
    bg_gray = np.float32(_median(ring_gray * ring_alpha))
    bg_alpha = np.float32(_median(ring_alpha))
    gray *= alpha
    ink = np.maximum(_distance(gray, bg_gray), _distance(alpha, bg_alpha))
    return InkWindow(ink, shape, top, left)


# An RGBA pixel read as one little-endian uint32 (red in the low byte): the
# bits of R, G and B; an opaque pixel's alpha bits; and gray level v is v * _GRAY_STEP.
_RGB_BITS, _OPAQUE_BITS, _GRAY_STEP = np.uint32(0x00FFFFFF), np.uint32(0xFF000000), np.uint32(0x00010101)


def _one_channel_ink(window, ring_keys):
    """The ink of the two RGBA canvases a browser sends, read from one channel;
    None for any other window (the caller then takes all four channels).

    Black ink on a transparent canvas ((0, 0, 0, a) on a clear ring): gray is
    exactly 0, so the ink is the alpha level. Gray ink on an opaque gray ring
    (the page's black on white): red = green = blue, so _luma's sum of three
    products is taken on the red level alone. Both equal the general path's values to
    the bit (a test compares them) without its float work on four channels,
    which was most of finding the ink (measured: 200 against 35-60 us on a
    150x200 window).
    """
    if ring_keys.size != 1:
        return None
    red, green, blue, alpha = ring_keys.view(np.uint8)
    keys = window.view("<u4")[..., 0]
    if ring_keys[0] == 0:
        return None if np.any(keys & _RGB_BITS) else _levels(window[..., 3])
    if not (red == green == blue and alpha == 255):
        return None
    if not np.array_equal((keys & np.uint32(0xFF)) * _GRAY_STEP | _OPAQUE_BITS, keys):
        return None  # a colour, or not opaque
    level, background = _levels(window[..., 0]), _levels(red)
    return _distance(_luma(level, level, level), _luma(background, background, background))


def _uniform_ring_box(rgba):
    """((top, bottom, left, right) of the ink window, the ring's RGBA as one uint32)
    of an RGBA image whose border ring is all one colour, as a canvas's is
    (transparent black when nothing fills it, the page's white); None otherwise.

    Pillow finds the box of the pixels that differ from the ring's colour in
    C (on the image itself when that colour is (0, 0, 0, 0), on its inverse
    when it is opaque white, else on its difference from a plain image of
    it), so only the window is copied into NumPy: the same window as
    _ink_window's search of a uniform ring, whose whole-canvas copy and row
    and column scans cost 95 us on a 280x280 canvas (measured here: 10 us for
    a transparent canvas, 22 us for the page's white one, 45-55 us for any
    other colour). The box is within the ring's inner edge exactly when every
    ring pixel has that colour.
    """
    width, height = rgba.size
    band = _border_band((height, width))
    colour = rgba.getpixel((0, 0))
    if colour == (0, 0, 0, 0):
        differs = rgba
    elif colour == (255, 255, 255, 255):  # the page's white: 255 - v is zero in every band where v is
        differs = ImageChops.invert(rgba)
    else:
        differs = ImageChops.difference(rgba, Image.new("RGBA", rgba.size, colour))
    try:
        box = differs.getbbox(alpha_only=False)  # every band zero = the ring's colour
    except TypeError:  # a Pillow without alpha_only: the general search
        return None
    if box is None:  # all one colour: the caller's search finds no ink either
        return None
    left, top, right, bottom = box
    if left < band or top < band or right > width - band or bottom > height - band:
        return None  # something else on the ring: not a uniform border
    window = max(0, top - 1), min(height, bottom + 1), max(0, left - 1), min(width, right + 1)
    return window, np.frombuffer(bytes(colour), np.uint32).copy()


# ITU-R 601 luma weights, applied in float32 to levels in [0, 1].
LUMA_WEIGHTS = tuple(np.float32(weight) for weight in (0.299, 0.587, 0.114))


def _levels(pixels):
    """uint8 levels -> float32 in [0, 1]: v / 255 in float32, the one rounding a
    lookup table of the 256 values would also hold (measured: converting and
    dividing costs half of a table lookup, which first widens every uint8
    index to 64 bits)."""
    levels = pixels.astype(np.float32)
    levels /= np.float32(255.0)
    return levels


def _gray_alpha8(rgba):
    """Float32 gray and alpha in [0, 1] of uint8 RGBA pixels (any leading shape).

    Gray is ((r * 0.299 + g * 0.587) + b * 0.114) on levels in [0, 1], each
    product and sum rounded to float32, in that order.
    """
    levels = _levels(rgba)
    return _luma(levels[..., 0], levels[..., 1], levels[..., 2]), levels[..., 3]


def _luma(red, green, blue):
    """((red * 0.299 + green * 0.587) + blue * 0.114), float32 levels in [0, 1]:
    every gray in this module is this one sum, so shortcuts give the same bits."""
    gray = red * LUMA_WEIGHTS[0]
    gray += green * LUMA_WEIGHTS[1]
    gray += blue * LUMA_WEIGHTS[2]
    return gray


def _distance(values, background):
    """|values - background| in a new float32 array."""
    out = np.subtract(values, background)
    return np.abs(out, out=out)


def _median(values):
    """np.median, without its machinery for the one value a uniform border leaves."""
    return values[0] if values.size == 1 else np.median(values)


def _upright(image):
    """The image turned as its EXIF orientation says (a copy only when it must turn)."""
    try:
        if image.getexif().get(ORIENTATION_TAG, 1) == 1:
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # Pillow's EXIF parser fails in many ways; a bad tag must not cost the drawing
        return image


def _as_mode(image, mode):
    """`image.convert(mode)` without the copy convert makes when the mode already fits."""
    return image if image.mode == mode else image.convert(mode)


def _wide_gray(image, max_size):
    """16/32-bit and float images -> float32 gray in [0, 1], by the bit depth actually used."""
    image = _reduce(image.convert("F") if image.mode != "F" else image, max_size)
    gray = np.asarray(image, dtype=np.float32)
    top = float(gray.max()) if gray.size else 0.0
    # full scale of the bit depth actually used (8, 10, 12, 16 bit sensors)
    scale = float(2 ** max(8, int(np.ceil(np.log2(top + 1.0)))) - 1) if top > 0 else 255.0
    return np.clip(gray / scale, 0.0, 1.0)


def _has_alpha(image):
    """Alpha channel, palette alpha, or a transparent colour key (GIF/PNG)."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def _reduce(image, max_size):
    """Box-reduce by an integer factor so the image fits in `max_size` (width, height)."""
    factor = reduce_factor(image.size, max_size)
    return image.reduce(factor) if factor > 1 else image


def reduce_factor(size, max_size):
    """The whole factor by which an image of `size` is reduced to fit `max_size`."""
    return max(-(-size[0] // max_size[0]), -(-size[1] // max_size[1]), 1)


def _border_band(shape):
    """Width in pixels of the border ring: the outer ~2% of the image."""
    return max(1, round(0.02 * min(shape[0], shape[1])))


def _border_ring(shape):
    """Boolean mask of the outer ~2% of the image: where the background is."""
    h, w = shape
    band = _border_band(shape)
    ring = np.ones(shape, dtype=bool)
    ring[band:h - band, band:w - band] = False
    return ring


def _ring_values(values):
    """The values of a 2-D array on its border ring (see _border_ring), strip by strip.

    The same values as `values[_border_ring(values.shape)]`, in another order
    (the top-left pixel still first); every use (all equal, median, count) is
    order-free. Four slices cost a fifth of building the whole-image mask.
    """
    h, w = values.shape
    band = _border_band(values.shape)
    if 2 * band >= h or 2 * band >= w:  # the ring is the whole image
        return values.ravel()
    return np.concatenate((values[:band].ravel(), values[h - band:].ravel(),
                           values[band:h - band, :band].ravel(), values[band:h - band, w - band:].ravel()))


def _float_image(values):
    """A float32 array as a Pillow "F" image over the same bytes (`Image.fromarray`
    without its array-interface round trip: measured 12 against 17 us)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return Image.frombuffer("F", (values.shape[1], values.shape[0]), values, "raw", "F", 0, 1)


def _float_pixels(image):
    """A Pillow "F" image's pixels as a read-only float32 array (`np.asarray` of a
    small image goes through the array interface: measured 15 against 5 us)."""
    return np.frombuffer(image.tobytes(), np.float32).reshape(image.height, image.width)


def _padded(values, width):
    """`np.pad(values, width)` (zeros around a 2-D array) without np.pad's general
    machinery, which cost more than the copy (measured: 56 against 8 us)."""
    h, w = values.shape
    out = np.zeros((h + 2 * width, w + 2 * width), values.dtype)
    out[width:width + h, width:width + w] = values
    return out


# --------------------------------------------------------------------------- normalisation

def clean_ink(ink):
    """Float ink, any scale -> ink in [0, 1] with the background's noise removed.

    Raises BlankImageError when nothing in it is ink. The number reader cleans
    the whole image once with this, then normalises each digit's share of it.
    """
    ink = np.asarray(ink, dtype=np.float32)
    return _clean_ink(InkWindow(ink, ink.shape))


def clean_ink_to_mnist(ink):
    """Cleaned ink (from `clean_ink`) holding one digit -> uint8 (28, 28) MNIST digit."""
    return _cleaned_to_mnist(ink, ignore_specks=min(ink.shape) >= 3)


def _window_to_mnist(window):
    return _cleaned_to_mnist(_clean_ink(window), ignore_specks=min(window.shape) >= 3)


def _cleaned_to_mnist(ink, ignore_specks):
    crop = _normalize_stroke(_crop_to_ink(ink, floor=0.0, ignore_specks=ignore_specks))
    digit = _fit_box(crop)
    return _center_of_mass_place(digit)


def _clean_ink(window):
    """Rescale ink to the image's own contrast and drop what is noise; raise if blank."""
    ink = window.ink
    if ink.ndim != 2 or ink.size == 0 or not np.all(np.isfinite(ink)):
        raise BlankImageError(BLANK_MESSAGE)
    size = window.shape[0] * window.shape[1]
    noise = _noise_level(ink) if window.whole else 0.0
    contrast = _kth_largest(ink, size, k=16)
    if contrast < CONTRAST_FLOOR or contrast < NOISE_SIGMAS * noise or not _blocks_hold_ink(window):
        raise BlankImageError(BLANK_MESSAGE)
    low = max(NOISE_FRACTION * contrast, INK_SIGMAS * noise)
    high = SOLID_FRACTION * contrast
    cleaned = np.subtract(ink, low)
    cleaned /= high - low
    np.clip(cleaned, 0.0, 1.0, out=cleaned)
    if np.count_nonzero(cleaned > 0.5) < MIN_INK_PIXELS:
        raise BlankImageError(BLANK_MESSAGE)
    return cleaned.astype(np.float32, copy=False)


def _blocks_hold_ink(window):
    """Whether the image's 3x3 block averages (`_block_average`) hold a line, not
    speckle: the fourth largest block reaches CONTRAST_FLOOR / 2.

    Any drawing with a solid stroke passes, and is seen to pass without the
    reduction (`_spread_solid_ink`, ~15 us; the reduction took 50-120 us of
    every request).
    """
    if _spread_solid_ink(window.ink, wanted=4):
        return True
    return _kth_largest(*_block_average(window), k=4) >= CONTRAST_FLOOR / 2


# A pixel this inked lifts the block of `_block_average` that holds it above
# CONTRAST_FLOOR / 2 on its own: a block averages at most 4x4 pixels (the
# reduction's scale, side / (side // 3), is at most 4 for sides of 6 or more;
# smaller images are not reduced), and 0.9 / 16 = 0.056 (with float32 rounding
# far below the margin). Pixels 4 or more rows (or columns) apart are in
# different blocks.
SOLID_INK = 0.9
BLOCK_SPAN = 4


def _spread_solid_ink(ink, wanted):
    """True when `wanted` pixels of at least SOLID_INK lie in rows, or in columns,
    at least BLOCK_SPAN apart: then as many blocks reach CONTRAST_FLOOR / 2, the
    ink never being negative (every ink here is a distance from the background).
    False says nothing (the caller then reduces)."""
    solid = ink >= SOLID_INK
    for axis in (1, 0):
        lines = np.flatnonzero(solid.any(axis=axis))  # rows holding solid ink, then columns
        found, i = 0, 0
        while i < lines.size and found < wanted:
            found += 1
            i = int(np.searchsorted(lines, lines[i] + BLOCK_SPAN))
        if found >= wanted:
            return True
    return False


def _block_average(window):
    """The ink box-reduced to a third of the image's size, on the window only,
    and the number of cells of the whole reduction.

    A thin pen line keeps a third of its level in 3x3 blocks; speckle does not.
    The reduction's cells are those of the whole image (Pillow's BOX resize to
    (W // 3, H // 3)); the cells the window touches are computed from the
    window padded with the zeros that surround it.
    """
    ink, (height, width) = window.ink, window.shape
    if min(height, width) < 6:
        return ink, height * width
    h, w = ink.shape
    rows = _cells(window.top, window.top + h, height)
    cols = _cells(window.left, window.left + w, width)
    (r0, r1, y0, y1), (c0, c1, x0, x1) = rows, cols
    region = np.zeros((y1 - y0, x1 - x0), np.float32)
    region[window.top - y0:window.top - y0 + h, window.left - x0:window.left - x0 + w] = ink
    sy, sx = height / (height // 3), width / (width // 3)
    box = (c0 * sx - x0, r0 * sy - y0, c1 * sx - x0, r1 * sy - y0)
    reduced = _float_image(region).resize((c1 - c0, r1 - r0), Image.BOX, box=box)
    return _float_pixels(reduced), (height // 3) * (width // 3)


def _cells(start, stop, length):
    """Cells of a BOX reduction of `length` to length // 3 that touch [start, stop),
    and the source pixels they cover: (first cell, end cell, first pixel, end pixel)."""
    cells = length // 3
    scale = length / cells
    first = min(cells - 1, int(start // scale))
    end = min(cells, int(np.ceil(stop / scale)))
    return first, end, int(first * scale), min(length, int(np.ceil(end * scale)))


def _noise_level(ink):
    """Standard deviation of the background's noise (0 for a clean canvas).

    Measured where the background was taken, the border ring: there the median
    distance from the background is the median of |N(0, sigma)|, 0.6745 sigma.
    """
    ring = _ring_values(ink)
    if np.count_nonzero(ring) * 2 < ring.size:
        return 0.0
    return float(np.median(ring)) / 0.6745


def _kth_largest(values, size=None, k=1):
    """A contrast estimate that a handful of hot pixels cannot set.

    `size` is the number of values including the zeros left out of `values`
    (a window of a larger image): k scales with it.
    """
    flat = values.ravel()
    k = min(k, max(1, (flat.size if size is None else size) // 50))
    if flat.size >= k:
        top = flat.max()
        if top > 0 and np.count_nonzero(flat == top) >= k:
            return float(top)  # k or more share the maximum (solid ink): no partition needed
    flat = flat[flat > 0]  # mostly background zeros, which slow partition down
    if flat.size < k:
        return 0.0
    return float(np.partition(flat, flat.size - k)[flat.size - k])


def _crop_to_ink(ink, floor=0.0, ignore_specks=False):
    """Crop to the ink's bounding box.

    With ignore_specks (for images of 3x3 pixels or more) the box is found on
    a 3x3 average, where a lone noise pixel (1/9) falls below SPECK_LEVEL but
    the tip of a 1 px line (2/9) and the faint rim of a stroke next to its
    core do not.
    """
    found = ink
    if ignore_specks:
        padded = _padded(ink, 1)
        rows = padded[:-2] + padded[1:-1]
        rows += padded[2:]
        found = rows[:, :-2] + rows[:, 1:-1]
        found += rows[:, 2:]
        found /= 9.0
        floor = SPECK_LEVEL
        if found.max() <= floor:  # nothing but specks: keep them rather than nothing
            found, floor = ink, 0.0
    rows = np.flatnonzero(found.max(axis=1) > floor)
    cols = np.flatnonzero(found.max(axis=0) > floor)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def stroke_width(ink):
    """Mean stroke width in pixels: 2 * ink area / ink boundary length.

    A stroke of length l and width w has area l*w and boundary ~2*l, so the
    ratio is w. Area is the summed coverage and boundary the total variation,
    both of which anti-aliasing leaves intact, so a 1 px pen line and a blurred
    MNIST stroke are measured alike.
    """
    ink = _padded(np.asarray(ink, dtype=np.float32), 1)
    corner = ink[:-1, :-1]  # every pixel that has a right and a lower neighbour
    dx = np.subtract(ink[:-1, 1:], corner)
    dy = np.subtract(ink[1:, :-1], corner)
    dx *= dx
    dy *= dy
    dx += dy
    boundary = float(np.sqrt(dx, out=dx).sum())
    return 2.0 * float(ink.sum()) / boundary if boundary > 0 else 0.0


def _normalize_stroke(crop):
    """Dilate thin pen lines, erode fat brush strokes, toward MNIST's stroke width.

    Stroke width relative to the digit's size is what the model knows: a 6 px
    pen on a full canvas ends up a hairline at 20 px, a 30 px brush on a small
    digit a blob. Dilating by radius r grows both the stroke (2r) and the box
    (2r), so r solves (w + 2r) / (L + 2r) = target / 20. The crop is resampled
    so that r is a whole number of working pixels: widths come out exact.
    """
    side = max(crop.shape)
    width = stroke_width(crop)
    relative = MNIST_BOX * width / side
    low, high = STROKE_BAND
    if low <= relative <= high or width <= 0:
        return crop
    goal = (low if relative < low else high) / MNIST_BOX
    radius = (goal * side - width) / (2.0 * (1.0 - goal))     # in crop pixels, < 0 = erode
    steps = int(round(radius * STROKE_WORK_SIDE / side))
    if steps == 0:
        return crop
    scale = steps / radius
    h, w = crop.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    work = _float_pixels(_float_image(crop).resize(size, Image.BOX if scale < 1 else Image.BILINEAR))
    work = _padded(np.clip(work, 0.0, 1.0), abs(steps) + 1)
    if steps > 0:
        # a hairline shrunk below one working pixel has lost intensity, not ink
        work = np.clip(work / max(_kth_largest(work, k=8), 1e-6), 0.0, 1.0)
        for i in range(steps):
            work = _morph_step(work, np.maximum, square=i % 2 == 0)
    else:
        start = np.count_nonzero(work > 0.5)
        for i in range(-steps):
            thinner = _morph_step(work, np.minimum, square=i % 2 == 1)
            if np.count_nonzero(thinner > 0.5) < 0.35 * start:
                break  # would eat whole strokes, not just their fat
            work = thinner
    return _crop_to_ink(work, floor=1e-3)


def _morph_step(image, op, square):
    """One radius-1 grey dilation (max) or erosion (min); alternating the 3x3
    square with the cross makes repeated steps grow a near-round octagon."""
    h, w = image.shape
    padded = _padded(image, 1)
    out = image.copy()
    shifts = ((0, 1), (1, 0), (0, -1), (-1, 0))
    if square:
        shifts += ((1, 1), (1, -1), (-1, 1), (-1, -1))
    for dy, dx in shifts:
        op(out, padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w], out=out)
    return out


def _fit_box(crop):
    """Scale so the longer side is 20 px, aspect kept exactly, anti-aliased.

    The shorter side is not rounded to whole pixels (which would stretch a
    narrow digit by up to half a pixel): the source window is widened instead,
    centred on the crop, so both axes share one scale.
    """
    h, w = crop.shape
    scale = MNIST_BOX / max(h, w)
    out_w, out_h = (max(1, int(np.ceil(n * scale - 1e-6))) for n in (w, h))
    pad = int(np.ceil(1.0 / scale)) + 1
    padded = _padded(crop, pad)
    left = pad + w / 2.0 - out_w / (2.0 * scale)
    top = pad + h / 2.0 - out_h / (2.0 * scale)
    box = (left, top, left + out_w / scale, top + out_h / scale)
    image = _float_image(padded).resize((out_w, out_h), RESAMPLE, box=box)
    return np.clip(_float_pixels(image), 0.0, 1.0)


def _center_of_mass_place(digit):
    """Paste into 28x28 so the centre of mass lands on the centre (integer shift)."""
    h, w = digit.shape
    total = float(digit.sum())
    if total <= 0:
        raise BlankImageError(BLANK_MESSAGE)
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / total)
    top = min(max(round(MNIST_CENTER - cy), 0), MNIST_SIDE - h)
    left = min(max(round(MNIST_CENTER - cx), 0), MNIST_SIDE - w)
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    out *= 255.0
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
