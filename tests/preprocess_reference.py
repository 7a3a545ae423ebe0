"""FROZEN reference: app/preprocess.py as it was before the lean /predict work
(commit c747043), kept verbatim below this docstring so that
tests/test_preprocess_equivalence.py can prove the faster code gives the same
28x28 digits. Do not edit or import it from the app; if preprocessing is
meant to change behaviour, delete this file and its test together.
"""
import numpy as np
from PIL import Image, ImageOps

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


BLANK_MESSAGE = "The image holds no ink: draw or upload a digit."


class BlankImageError(ValueError):
    """The image holds no ink: there is nothing to classify."""


def preprocess(image):
    """Any PIL image -> uint8 (28, 28), white ink on black, MNIST-normalised."""
    return ink_to_mnist(ink_map(image))


# --------------------------------------------------------------------------- decoding

def ink_map(image):
    """PIL image of any mode -> float32 ink in [0, 1] (1 = ink), polarity undone.

    Background is the median of the border ring, ink is how far a pixel is from it
    in (premultiplied gray, alpha): this single rule covers black on white, white
    on black, and ink on a transparent canvas whose RGB is all zero.
    """
    gray, alpha = _gray_and_alpha(image)
    ring = _border_ring(gray.shape)
    if alpha is None:
        background = np.median(gray[ring])
        return np.abs(gray - background)
    premultiplied = gray * alpha
    bg_gray = np.median(premultiplied[ring])
    bg_alpha = np.median(alpha[ring])
    return np.maximum(np.abs(premultiplied - bg_gray), np.abs(alpha - bg_alpha))


def _gray_and_alpha(image):
    """Float32 gray in [0, 1] and alpha in [0, 1] (None when fully opaque)."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # Pillow's EXIF parser fails in many ways; a bad tag must not cost the drawing
        pass
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _reduce(image.convert("F") if mode != "F" else image)
        gray = np.asarray(image, dtype=np.float32)
        top = float(gray.max()) if gray.size else 0.0
        # full scale of the bit depth actually used (8, 10, 12, 16 bit sensors)
        scale = float(2 ** max(8, int(np.ceil(np.log2(top + 1.0)))) - 1) if top > 0 else 255.0
        return np.clip(gray / scale, 0.0, 1.0), None
    if _has_alpha(image):
        image = _reduce(image.convert("RGBA"))
        rgba = np.asarray(image, dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        gray = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
        if alpha.min() >= 1.0:
            alpha = None
        return gray.astype(np.float32), alpha
    if mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1, P without transparency
    image = _reduce(image.convert("L"))
    return np.asarray(image, dtype=np.float32) / 255.0, None


def _has_alpha(image):
    """Alpha channel, palette alpha, or a transparent colour key (GIF/PNG)."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def _reduce(image):
    """Box-reduce by an integer factor so neither side exceeds MAX_WORK_SIDE."""
    factor = -(-max(image.size) // MAX_WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def _border_ring(shape):
    """Boolean mask of the outer ~2% of the image: where the background is."""
    h, w = shape
    band = max(1, round(0.02 * min(h, w)))
    ring = np.ones(shape, dtype=bool)
    ring[band:h - band, band:w - band] = False
    return ring


# --------------------------------------------------------------------------- normalisation

def ink_to_mnist(ink):
    """Float ink (H, W), larger = more ink, any scale -> uint8 (28, 28) MNIST digit."""
    ink = _clean_ink(np.asarray(ink, dtype=np.float32))
    crop = _normalize_stroke(_crop_to_ink(ink, floor=0.0, ignore_specks=True))
    digit = _fit_box(crop)
    return _center_of_mass_place(digit)


def _clean_ink(ink):
    """Rescale ink to the image's own contrast and drop what is noise; raise if blank."""
    if ink.ndim != 2 or ink.size == 0 or not np.all(np.isfinite(ink)):
        raise BlankImageError(BLANK_MESSAGE)
    # A thin pen line keeps a third of its level in 3x3 blocks; speckle does not.
    smooth = np.asarray(Image.fromarray(ink, "F").resize(
        (max(1, ink.shape[1] // 3), max(1, ink.shape[0] // 3)), Image.BOX)) if min(ink.shape) >= 6 else ink
    noise = _noise_level(ink)
    contrast = _kth_largest(ink, 16)
    if (_kth_largest(smooth, 4) < CONTRAST_FLOOR / 2 or contrast < CONTRAST_FLOOR
            or contrast < NOISE_SIGMAS * noise):
        raise BlankImageError(BLANK_MESSAGE)
    low = max(NOISE_FRACTION * contrast, INK_SIGMAS * noise)
    high = SOLID_FRACTION * contrast
    cleaned = np.clip((ink - low) / (high - low), 0.0, 1.0)
    if np.count_nonzero(cleaned > 0.5) < MIN_INK_PIXELS:
        raise BlankImageError(BLANK_MESSAGE)
    return cleaned.astype(np.float32)


def _noise_level(ink):
    """Standard deviation of the background's noise (0 for a clean canvas).

    Measured where the background was taken, the border ring: there the median
    distance from the background is the median of |N(0, sigma)|, 0.6745 sigma.
    """
    ring = ink[_border_ring(ink.shape)]
    if np.count_nonzero(ring) * 2 < ring.size:
        return 0.0
    return float(np.median(ring)) / 0.6745


def _kth_largest(values, k):
    """A contrast estimate that a handful of hot pixels cannot set."""
    flat = values.ravel()
    k = min(k, max(1, flat.size // 50))
    flat = flat[flat > 0]  # mostly background zeros, which slow partition down
    if flat.size < k:
        return 0.0
    return float(np.partition(flat, flat.size - k)[flat.size - k])


def _crop_to_ink(ink, floor=0.0, ignore_specks=False):
    """Crop to the ink's bounding box.

    With ignore_specks the box is found on a 3x3 average, where a lone noise
    pixel (1/9) falls below SPECK_LEVEL but the tip of a 1 px line (2/9) and
    the faint rim of a stroke next to its core do not.
    """
    found = ink
    if ignore_specks and min(ink.shape) >= 3:
        padded = np.pad(ink, 1)
        rows = padded[:-2] + padded[1:-1] + padded[2:]
        found = (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0
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
    ink = np.pad(np.asarray(ink, dtype=np.float32), 1)
    dx = np.diff(ink, axis=1)[:-1, :]
    dy = np.diff(ink, axis=0)[:, :-1]
    boundary = float(np.sqrt(dx * dx + dy * dy).sum())
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
    work = np.asarray(Image.fromarray(crop, "F").resize(size, Image.BOX if scale < 1 else Image.BILINEAR))
    work = np.pad(np.clip(work, 0.0, 1.0), abs(steps) + 1)
    if steps > 0:
        # a hairline shrunk below one working pixel has lost intensity, not ink
        work = np.clip(work / max(_kth_largest(work, 8), 1e-6), 0.0, 1.0)
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
    padded = np.pad(image, 1)
    out = image.copy()
    shifts = ((0, 1), (1, 0), (0, -1), (-1, 0))
    if square:
        shifts += ((1, 1), (1, -1), (-1, 1), (-1, -1))
    for dy, dx in shifts:
        out = op(out, padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w])
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
    padded = np.pad(crop, pad)
    left = pad + w / 2.0 - out_w / (2.0 * scale)
    top = pad + h / 2.0 - out_h / (2.0 * scale)
    box = (left, top, left + out_w / scale, top + out_h / scale)
    image = Image.fromarray(padded, "F").resize((out_w, out_h), RESAMPLE, box=box)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def _center_of_mass_place(digit):
    """Paste into 28x28 so the centre of mass lands on the centre (integer shift)."""
    h, w = digit.shape
    total = float(digit.sum())
    if total <= 0:
        raise BlankImageError(BLANK_MESSAGE)
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / total)
    top = int(np.clip(round(MNIST_CENTER - cy), 0, MNIST_SIDE - h))
    left = int(np.clip(round(MNIST_CENTER - cx), 0, MNIST_SIDE - w))
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
