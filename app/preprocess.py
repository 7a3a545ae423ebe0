"""Bring whatever a person hands in to the 28x28 digit the model was trained on.

MNIST digits are white ink on black, their ink bounding box scaled (aspect kept,
anti-aliased) so that its longer side is 20 px, then placed in a 28x28 field with
the centre of mass at the centre. A drawing on a 280x280 canvas differs in every
one of those respects (size, position, polarity, alpha, stroke width), and a
plain resize loses a third of the accuracy, so each difference is undone here.

Two entry points share one code path: `preprocess(PIL image)` for the API and
`ink_to_mnist(float ink array)` for tools that already hold ink.
"""
import numpy as np
from PIL import Image, ImageOps

# Inputs larger than this are box-reduced first: bounded work for any upload.
MAX_WORK_SIDE = 1024
# Ink must differ from the background by this much (fraction of full scale)
# after a 3x3 average; sensor noise and faint smudges stay below it.
CONTRAST_FLOOR = 0.10
# Differences below this fraction of the image's own contrast are paper texture,
# JPEG ringing or noise, not ink.
NOISE_FRACTION = 0.25
# Fewer ink pixels than this (after thresholding) is not a drawing.
MIN_INK_PIXELS = 4

MNIST_SIDE = 28
MNIST_BOX = 20


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
    except Exception:  # a broken EXIF block must not cost the drawing
        pass
    if image.format == "JPEG" and max(image.size) > MAX_WORK_SIDE:
        image.draft("L", (MAX_WORK_SIDE, MAX_WORK_SIDE))
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _reduce(image.convert("F") if mode != "F" else image)
        gray = np.asarray(image, dtype=np.float32)
        top = float(gray.max()) if gray.size else 0.0
        scale = 65535.0 if top > 255.0 else 255.0
        return np.clip(gray / scale, 0.0, 1.0), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
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
    crop = _crop_to_ink(ink)
    digit = _fit_box(crop)
    return _center_of_mass_place(digit)


def _clean_ink(ink):
    """Rescale ink to the image's own contrast and drop what is noise; raise if blank."""
    if ink.ndim != 2 or ink.size == 0:
        raise BlankImageError("the image is empty")
    smooth = np.asarray(Image.fromarray(ink, "F").resize(
        (max(1, ink.shape[1] // 3), max(1, ink.shape[0] // 3)), Image.BOX)) if min(ink.shape) >= 6 else ink
    contrast_smooth = _kth_largest(smooth, 4)
    if not np.isfinite(contrast_smooth) or contrast_smooth < CONTRAST_FLOOR / 2:
        raise BlankImageError("the image holds no ink: draw or upload a digit")
    contrast = _kth_largest(ink, 16)
    if contrast < CONTRAST_FLOOR:
        raise BlankImageError("the image holds no ink: draw or upload a digit")
    cleaned = np.clip((ink / contrast - NOISE_FRACTION) / (1.0 - NOISE_FRACTION), 0.0, 1.0)
    if np.count_nonzero(cleaned > 0.5) < MIN_INK_PIXELS:
        raise BlankImageError("the image holds no ink: draw or upload a digit")
    return cleaned.astype(np.float32)


def _kth_largest(values, k):
    """A contrast estimate that a handful of hot pixels cannot set."""
    flat = values.ravel()
    k = int(min(k, flat.size))
    return float(np.partition(flat, flat.size - k)[flat.size - k])


def _crop_to_ink(ink):
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _fit_box(crop):
    """Scale so the longer side is 20 px, aspect kept, area-averaged like MNIST."""
    h, w = crop.shape
    scale = MNIST_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = Image.fromarray(crop, "F").resize(size, Image.LANCZOS)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def _center_of_mass_place(digit):
    """Paste into 28x28 so the centre of mass lands on the centre (integer shift)."""
    h, w = digit.shape
    total = float(digit.sum())
    if total <= 0:
        raise BlankImageError("the image holds no ink: draw or upload a digit")
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / total)
    center = (MNIST_SIDE - 1) / 2.0
    top = int(np.clip(round(center - cy), 0, MNIST_SIDE - h))
    left = int(np.clip(round(center - cx), 0, MNIST_SIDE - w))
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[top:top + h, left:left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
